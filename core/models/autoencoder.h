// The project's convolutional autoencoder: images [B, Cimg, H, W] in [−1, 1] ↔ latents
// [B, latent_channels, H/f, W/f], deterministic (a plain autoencoder), with its reconstruction loss and
// explicit backward into one flat gradient buffer. Templated on the scalar: float to train, double for
// gradient checks. Layer by layer (c_i = config.channels[i]):
//   encoder: conv_in 3×3 Cimg→c0 │ per level i: norm, SiLU, 3×3 stride-2 conv c_i→c_{i+1}
//            │ mid_layers × (norm, SiLU, 3×3 conv) │ norm_out, SiLU, conv_out 3×3 → latent_channels
//   decoder: conv_in 3×3 latent→c_last │ mid_layers × (norm, SiLU, 3×3 conv)
//            │ per level, widest first: norm, SiLU, nearest 2× upsample, 3×3 conv c_{i+1}→c_i
//            │ norm_out, SiLU, conv_out 3×3 c0→Cimg
#pragma once
#include <cstdint>
#include <vector>

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

template <class T>
class Autoencoder {
 public:
  explicit Autoencoder(const AutoencoderConfig& cfg);

  const AutoencoderConfig& config() const { return cfg_; }
  // Only the latent normalisation may change after construction (it is measured after training).
  void set_latent_normalisation(double scaling_factor, double shift_factor);
  const ParameterLayout& layout() const { return layout_; }
  std::vector<T>& parameters() { return params_; }
  const std::vector<T>& parameters() const { return params_; }
  std::vector<T>& gradients() { return grads_; }
  void zero_gradients();
  // PyTorch's default Conv2d init, U(±1/√fan_in) for weight and bias; GroupNorm γ = 1, β = 0.
  void init_parameters(uint64_t seed);

  // Training: encode and decode B images, keeping every activation, and return the loss.
  AutoencoderLoss forward(const T* images, int64_t B, const AutoencoderLossWeights& weights = {});
  // Gradient of the last forward's total loss, accumulated into gradients().
  void backward();
  const std::vector<T>& latents() const { return encoder_.output(); }         // raw z of the last forward
  const std::vector<T>& reconstruction() const { return decoder_.output(); }  // x̂ of the last forward

  // Inference on B images / latents (they reuse, and so overwrite, the state of the last forward).
  // Raw latents: the flow's input is (z − shift_factor)·scaling_factor (see AutoencoderConfig).
  void encode(const T* images, int64_t B, T* latents);
  void decode(const T* latents, int64_t B, T* images);

 private:
  AutoencoderConfig cfg_;
  ParameterLayout layout_;
  ConvStack<T> encoder_, decoder_;
  std::vector<T> params_, grads_;
  // Forward state for backward().
  int64_t batch_ = 0;
  AutoencoderLossWeights weights_;
  std::vector<T> dlatent_, dimage_;
};

}  // namespace starflow::core
