// ConvStack's definitions (building the chain, running it forward and backward), included by each backend's
// instantiation.
#pragma once
#include <algorithm>
#include <stdexcept>

#include "core/models/conv_stack.h"

namespace starflow::core {

constexpr double kGroupNormEps = 1e-6;

template <class Backend>
ConvStack<Backend>::ConvStack(const Backend& backend, int64_t channels, int64_t height, int64_t width)
    : be_(&backend), in_c_(channels), in_h_(height), in_w_(width), c_(channels), h_(height), w_(width) {}

template <class Backend>
typename ConvStack<Backend>::Layer ConvStack<Backend>::next_layer(Kind kind) const {
  Layer l;
  l.kind = kind;
  l.channels = c_;
  l.height = h_;
  l.width = w_;
  return l;
}

template <class Backend>
void ConvStack<Backend>::add_conv(const std::string& name, int64_t out_channels, int64_t kernel, int64_t stride,
                            ParameterLayout& layout) {
  Layer l = next_layer(Kind::conv);
  // "Same" padding for odd kernels: stride 1 keeps the size, stride 2 halves an even size exactly.
  l.conv = Conv2dShape{1, c_, h_, w_, out_channels, kernel, stride, kernel / 2};
  l.weight = layout.add(name + ".weight", {out_channels, c_, kernel, kernel});
  l.bias = layout.add(name + ".bias", {out_channels});
  layers_.push_back(l);
  c_ = out_channels;
  h_ = l.conv.out_height();
  w_ = l.conv.out_width();
}

template <class Backend>
void ConvStack<Backend>::add_group_norm(const std::string& name, int64_t groups, ParameterLayout& layout) {
  if (groups <= 0 || c_ % groups != 0)
    throw std::invalid_argument(name + ": " + std::to_string(c_) + " channels do not split into " +
                                std::to_string(groups) + " groups");
  Layer l = next_layer(Kind::group_norm);
  l.groups = groups;
  l.weight = layout.add(name + ".weight", {c_});
  l.bias = layout.add(name + ".bias", {c_});
  layers_.push_back(l);
}

template <class Backend>
void ConvStack<Backend>::add_silu() {
  layers_.push_back(next_layer(Kind::silu));
}

template <class Backend>
void ConvStack<Backend>::add_upsample2x() {
  layers_.push_back(next_layer(Kind::upsample));
  h_ *= 2;
  w_ *= 2;
}

template <class Backend>
void ConvStack<Backend>::forward(const T* params, const T* in, int64_t B) {
  const size_t n = layers_.size();
  batch_ = B;
  acts_.resize(n + 1);
  stats_.resize(n);
  Backend::resize(acts_[0], B * input_size());
  be_->copy(acts_[0].data(), in, B * input_size());
  for (size_t i = 0; i < n; ++i) {
    const Layer& l = layers_[i];
    const int64_t plane = l.height * l.width;
    const T* x = acts_[i].data();
    Buffer& out = acts_[i + 1];
    switch (l.kind) {
      case Kind::conv: {
        Conv2dShape s = l.conv;
        s.batch = B;
        Backend::resize(out, B * s.out_channels * s.out_height() * s.out_width());
        be_->conv2d_forward(out.data(), x, params + l.weight, params + l.bias, s);
        break;
      }
      case Kind::group_norm:
        Backend::resize(out, B * l.channels * plane);
        Backend::resize(stats_[i], 2 * B * l.groups);
        be_->group_norm_forward(out.data(), stats_[i].data(), stats_[i].data() + B * l.groups, x, params + l.weight,
                                params + l.bias, B, l.channels, plane, l.groups, kGroupNormEps);
        break;
      case Kind::silu:
        Backend::resize(out, B * l.channels * plane);
        be_->silu_forward(out.data(), x, B * l.channels * plane);
        break;
      case Kind::upsample:
        Backend::resize(out, 4 * B * l.channels * plane);
        be_->upsample_nearest2x_forward(out.data(), x, B * l.channels, l.height, l.width);
        break;
    }
  }
}

template <class Backend>
void ConvStack<Backend>::backward(const T* params, T* grads, const T* dout, T* din) {
  const int64_t B = batch_;
  // Two buffers ping-pong down the chain; the largest activation bounds both.
  size_t largest = 0;
  for (const auto& a : acts_) largest = std::max(largest, a.size());
  Backend::resize(grad_a_, largest);
  Backend::resize(grad_b_, largest);
  be_->copy(grad_a_.data(), dout, static_cast<int64_t>(acts_.back().size()));
  for (size_t i = layers_.size(); i-- > 0;) {
    const Layer& l = layers_[i];
    const int64_t plane = l.height * l.width;
    const T* g = grad_a_.data();
    // The first layer writes straight into the caller's din (or nowhere).
    T* d = i == 0 ? din : grad_b_.data();
    const T* x = acts_[i].data();
    switch (l.kind) {
      case Kind::conv: {
        Conv2dShape s = l.conv;
        s.batch = B;
        be_->conv2d_backward(d, grads ? grads + l.weight : nullptr, grads ? grads + l.bias : nullptr, g, x,
                             params + l.weight, s);
        break;
      }
      case Kind::group_norm:
        be_->group_norm_backward(d, grads ? grads + l.weight : nullptr, grads ? grads + l.bias : nullptr, g, x,
                                 stats_[i].data(), stats_[i].data() + B * l.groups, params + l.weight, B, l.channels,
                                 plane, l.groups);
        break;
      case Kind::silu:
        if (d) be_->silu_backward(d, g, x, B * l.channels * plane);
        break;
      case Kind::upsample:
        if (d) be_->upsample_nearest2x_backward(d, g, B * l.channels, l.height, l.width);
        break;
    }
    std::swap(grad_a_, grad_b_);
  }
}

}  // namespace starflow::core
