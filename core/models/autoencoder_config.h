// The configuration of the project's convolutional autoencoder (images ↔ 4-channel latents at 1/4 or 1/8
// resolution), with the latent normalisation the flow needs, stored as JSON in the weights file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace starflow::core {

struct AutoencoderConfig {
  int64_t image_channels = 1;  // 1 for Fashion-MNIST, 3 for RGB
  int64_t image_size = 32;     // H = W, a multiple of downsampling()
  int64_t latent_channels = 4;
  // Widths: channels[0] at full resolution, channels[i] after the i-th 2× downsampling. Two downsamplings
  // give 1/4 resolution (32×32 → 8×8), three give 1/8.
  std::vector<int64_t> channels{32, 64, 64};
  int64_t norm_groups = 8;  // GroupNorm groups; must divide every width
  int64_t mid_layers = 1;   // extra norm → SiLU → 3×3 conv layers at the latent resolution, on each side
  // The flow sees (z − shift_factor)·scaling_factor, which has roughly zero mean and unit std on the
  // training images (like Stable Diffusion's 0.18215): its noise augmentation σ_n = 0.3 assumes that scale.
  double scaling_factor = 1.0;
  double shift_factor = 0.0;

  int64_t downsampling() const { return int64_t{1} << (channels.size() - 1); }
  int64_t latent_size() const { return image_size / downsampling(); }
  int64_t image_numel() const { return image_channels * image_size * image_size; }        // per image
  int64_t latent_numel() const { return latent_channels * latent_size() * latent_size(); }  // per image

  // Throws std::invalid_argument naming the key and the rule it breaks.
  void validate() const;
  std::string to_json() const;
  // Refuses unknown keys and a `downsampling` that disagrees with `channels`.
  static AutoencoderConfig from_json(const std::string& json_text);
};

}  // namespace starflow::core
