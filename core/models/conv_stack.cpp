// ConvStack: building the chain, and running it forward and backward on the CPU ops.
#include "core/models/conv_stack.h"

#include <algorithm>
#include <stdexcept>

#include "core/ops/cpu/group_norm.h"
#include "core/ops/cpu/silu.h"
#include "core/ops/cpu/upsample.h"

namespace starflow::core {

namespace {

constexpr double kGroupNormEps = 1e-6;

}  // namespace

template <class T>
ConvStack<T>::ConvStack(int64_t channels, int64_t height, int64_t width)
    : in_c_(channels), in_h_(height), in_w_(width), c_(channels), h_(height), w_(width) {}

template <class T>
typename ConvStack<T>::Layer ConvStack<T>::next_layer(Kind kind) const {
  Layer l;
  l.kind = kind;
  l.channels = c_;
  l.height = h_;
  l.width = w_;
  return l;
}

template <class T>
void ConvStack<T>::add_conv(const std::string& name, int64_t out_channels, int64_t kernel, int64_t stride,
                            ParameterLayout& layout) {
  Layer l = next_layer(Kind::conv);
  // "Same" padding for odd kernels: stride 1 keeps the size, stride 2 halves an even size exactly.
  l.conv = cpu::Conv2dShape{1, c_, h_, w_, out_channels, kernel, stride, kernel / 2};
  l.weight = layout.add(name + ".weight", {out_channels, c_, kernel, kernel});
  l.bias = layout.add(name + ".bias", {out_channels});
  layers_.push_back(l);
  c_ = out_channels;
  h_ = l.conv.out_height();
  w_ = l.conv.out_width();
}

template <class T>
void ConvStack<T>::add_group_norm(const std::string& name, int64_t groups, ParameterLayout& layout) {
  if (groups <= 0 || c_ % groups != 0)
    throw std::invalid_argument(name + ": " + std::to_string(c_) + " channels do not split into " +
                                std::to_string(groups) + " groups");
  Layer l = next_layer(Kind::group_norm);
  l.groups = groups;
  l.weight = layout.add(name + ".weight", {c_});
  l.bias = layout.add(name + ".bias", {c_});
  layers_.push_back(l);
}

template <class T>
void ConvStack<T>::add_silu() {
  layers_.push_back(next_layer(Kind::silu));
}

template <class T>
void ConvStack<T>::add_upsample2x() {
  layers_.push_back(next_layer(Kind::upsample));
  h_ *= 2;
  w_ *= 2;
}

template <class T>
void ConvStack<T>::forward(const T* params, const T* in, int64_t B) {
  const size_t n = layers_.size();
  batch_ = B;
  acts_.resize(n + 1);
  stats_.resize(n);
  acts_[0].assign(in, in + B * input_size());
  for (size_t i = 0; i < n; ++i) {
    const Layer& l = layers_[i];
    const int64_t plane = l.height * l.width;
    const T* x = acts_[i].data();
    std::vector<T>& out = acts_[i + 1];
    switch (l.kind) {
      case Kind::conv: {
        cpu::Conv2dShape s = l.conv;
        s.batch = B;
        out.resize(B * s.out_channels * s.out_height() * s.out_width());
        cpu::conv2d_forward<T>(out.data(), x, params + l.weight, params + l.bias, s);
        break;
      }
      case Kind::group_norm:
        out.resize(B * l.channels * plane);
        stats_[i].resize(2 * B * l.groups);
        cpu::group_norm_forward<T>(out.data(), stats_[i].data(), stats_[i].data() + B * l.groups, x,
                                   params + l.weight, params + l.bias, B, l.channels, plane, l.groups,
                                   static_cast<T>(kGroupNormEps));
        break;
      case Kind::silu:
        out.resize(B * l.channels * plane);
        cpu::silu_forward<T>(out.data(), x, B * l.channels * plane);
        break;
      case Kind::upsample:
        out.resize(4 * B * l.channels * plane);
        cpu::upsample_nearest2x_forward<T>(out.data(), x, B * l.channels, l.height, l.width);
        break;
    }
  }
}

template <class T>
void ConvStack<T>::backward(const T* params, T* grads, const T* dout, T* din) {
  const int64_t B = batch_;
  // Two buffers ping-pong down the chain; the largest activation bounds both.
  size_t largest = 0;
  for (const auto& a : acts_) largest = std::max(largest, a.size());
  grad_a_.resize(largest);
  grad_b_.resize(largest);
  std::copy(dout, dout + acts_.back().size(), grad_a_.begin());
  for (size_t i = layers_.size(); i-- > 0;) {
    const Layer& l = layers_[i];
    const int64_t plane = l.height * l.width;
    const T* g = grad_a_.data();
    // The first layer writes straight into the caller's din (or nowhere).
    T* d = i == 0 ? din : grad_b_.data();
    const T* x = acts_[i].data();
    switch (l.kind) {
      case Kind::conv: {
        cpu::Conv2dShape s = l.conv;
        s.batch = B;
        cpu::conv2d_backward<T>(d, grads ? grads + l.weight : nullptr, grads ? grads + l.bias : nullptr, g, x,
                                params + l.weight, s);
        break;
      }
      case Kind::group_norm:
        cpu::group_norm_backward<T>(d, grads ? grads + l.weight : nullptr, grads ? grads + l.bias : nullptr, g, x,
                                    stats_[i].data(), stats_[i].data() + B * l.groups, params + l.weight, B,
                                    l.channels, plane, l.groups);
        break;
      case Kind::silu:
        if (d) cpu::silu_backward<T>(d, g, x, B * l.channels * plane);
        break;
      case Kind::upsample:
        if (d) cpu::upsample_nearest2x_backward<T>(d, g, B * l.channels, l.height, l.width);
        break;
    }
    std::swap(grad_a_, grad_b_);
  }
}

template class ConvStack<float>;
template class ConvStack<double>;

}  // namespace starflow::core
