// The project's convolutional autoencoder: images [B, Cimg, H, W] in [−1, 1] ↔ latents
// [B, latent_channels, H/f, W/f], deterministic (a plain autoencoder), with its reconstruction loss and
// explicit backward into one flat gradient buffer. Written against a backend (core/backends/*):
// Autoencoder<T> is the CPU model, float to train, double for gradient checks.
// Layer by layer (c_i = config.channels[i]):
//   encoder: conv_in 3×3 Cimg→c0 │ per level i: norm, SiLU, 3×3 stride-2 conv c_i→c_{i+1}
//            │ mid_layers × (norm, SiLU, 3×3 conv) │ norm_out, SiLU, conv_out 3×3 → latent_channels
//   decoder: conv_in 3×3 latent→c_last │ mid_layers × (norm, SiLU, 3×3 conv)
//            │ per level, widest first: norm, SiLU, nearest 2× upsample, 3×3 conv c_{i+1}→c_i
//            │ norm_out, SiLU, conv_out 3×3 c0→Cimg
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backends/cpu/cpu_backend.h"
#include "core/models/autoencoder_config.h"
#include "core/models/conv_stack.h"
#include "core/models/parameter_layout.h"

namespace starflow::core {

struct AutoencoderLossWeights {
  double l1 = 0;         // weight of mean|x̂ − x| next to the MSE
  double latent_l2 = 0;  // weight of mean(z²): keeps the raw latents from drifting to large scales
};

struct AutoencoderLoss {
  double mse = 0;        // mean((x̂ − x)²) over every pixel
  double l1 = 0;         // mean|x̂ − x|
  double latent_l2 = 0;  // mean(z²)
  double total = 0;      // mse + w.l1·l1 + w.latent_l2·latent_l2
};

template <class Backend>
class AutoencoderModel {
 public:
  using T = typename Backend::Scalar;
  using Buffer = typename Backend::template Buffer<T>;
  explicit AutoencoderModel(const AutoencoderConfig& cfg);
  AutoencoderModel(AutoencoderModel&&) noexcept;
  ~AutoencoderModel();

  const AutoencoderConfig& config() const { return cfg_; }
  // Only the latent normalisation may change after construction (it is measured after training).
  void set_latent_normalisation(double scaling_factor, double shift_factor);
  const ParameterLayout& layout() const { return layout_; }
  Buffer& parameters() { return params_; }
  const Buffer& parameters() const { return params_; }
  Buffer& gradients() { return grads_; }
  void zero_gradients();
  // PyTorch's default Conv2d init, U(±1/√fan_in) for weight and bias; GroupNorm γ = 1, β = 0.
  void init_parameters(uint64_t seed);

  // Training: encode and decode B images, keeping every activation, and return the loss.
  AutoencoderLoss forward(const T* images, int64_t B, const AutoencoderLossWeights& weights = {});
  // Gradient of the last forward's total loss, accumulated into gradients().
  void backward();
  const Buffer& latents() const { return encoder_.output(); }         // raw z of the last forward
  const Buffer& reconstruction() const { return decoder_.output(); }  // x̂ of the last forward

  // Inference on B images / latents (they reuse, and so overwrite, the state of the last forward).
  // Raw latents: the flow's input is (z − shift_factor)·scaling_factor (see AutoencoderConfig).
  void encode(const T* images, int64_t B, T* latents);
  void decode(const T* latents, int64_t B, T* images);

 private:
  AutoencoderConfig cfg_;
  std::unique_ptr<Backend> be_;  // on the heap: the conv chains keep its address across moves
  ParameterLayout layout_;
  ConvStack<Backend> encoder_, decoder_;
  Buffer params_, grads_;
  // Forward state for backward().
  int64_t batch_ = 0;
  AutoencoderLossWeights weights_;
  Buffer dlatent_, dimage_;
};

// The CPU autoencoder.
template <class T>
using Autoencoder = AutoencoderModel<CpuBackend<T>>;

}  // namespace starflow::core
