// A straight chain of image layers (conv2d, GroupNorm, SiLU, nearest 2× upsampling) over NCHW tensors:
// the shape of both halves of the autoencoder. forward() keeps every layer's input, backward() walks
// the chain in reverse, accumulating parameter gradients into the model's flat buffer. Written against a
// backend (core/backends/*), whose memory the tensors live in.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/models/parameter_layout.h"
#include "core/ops/conv2d_shape.h"

namespace starflow::core {

template <class Backend>
class ConvStack {
 public:
  using T = typename Backend::Scalar;
  using Buffer = typename Backend::template Buffer<T>;
  // Starts an empty chain whose input is [B, channels, height, width].
  ConvStack(const Backend& backend, int64_t channels, int64_t height, int64_t width);

  // Each add_* appends one layer after the current output; parameters go into `layout` under
  // name + ".weight" / ".bias".
  void add_conv(const std::string& name, int64_t out_channels, int64_t kernel, int64_t stride,
                ParameterLayout& layout);
  void add_group_norm(const std::string& name, int64_t groups, ParameterLayout& layout);
  void add_silu();
  void add_upsample2x();

  int64_t input_size() const { return in_c_ * in_h_ * in_w_; }     // per image
  int64_t output_size() const { return c_ * h_ * w_; }             // per image
  int64_t output_channels() const { return c_; }
  int64_t output_height() const { return h_; }

  // Runs the chain on B images; the result stays in output() until the next forward.
  void forward(const T* params, const T* in, int64_t B);
  const Buffer& input() const { return acts_.front(); }  // a copy of the last forward's input
  const Buffer& output() const { return acts_.back(); }
  // dout: ∂loss/∂output. Accumulates into grads (+=; nullptr skips the parameter gradients) and writes
  // ∂loss/∂input to din unless it is nullptr.
  void backward(const T* params, T* grads, const T* dout, T* din);

 private:
  enum class Kind { conv, group_norm, silu, upsample };
  struct Layer {
    Kind kind = Kind::silu;
    int64_t channels = 0, height = 0, width = 0;  // the layer's input, per image
    Conv2dShape conv;                 // conv only (batch filled in per call)
    int64_t groups = 0;               // group_norm only
    int64_t weight = 0, bias = 0;     // offsets into the flat buffers (conv, group_norm)
  };

  Layer next_layer(Kind kind) const;  // a layer of this kind reading the current output

  const Backend* be_;
  std::vector<Layer> layers_;
  int64_t in_c_, in_h_, in_w_;
  int64_t c_, h_, w_;  // current output shape while building
  // Forward state: acts_[i] is the input of layer i, acts_.back() the output; stats_[i] the GroupNorm
  // mean and rstd of layer i ([B, groups] each, back to back).
  int64_t batch_ = 0;
  std::vector<Buffer> acts_;
  std::vector<typename Backend::template Buffer<typename Backend::Stat>> stats_;
  Buffer grad_a_, grad_b_;
};

}  // namespace starflow::core
