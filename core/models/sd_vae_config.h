// The configuration of the Stable-Diffusion VAE (diffusers `AutoencoderKL`), read from a diffusers config.json.
// Only the settings this implementation computes are accepted; a key that would change the architecture in a
// way it does not implement is refused by name rather than ignored.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace starflow::core {

// The defaults are stabilityai/sd-vae-ft-ema's config.json.
struct SdVaeConfig {
  int64_t in_channels = 3, out_channels = 3, latent_channels = 4;
  std::vector<int64_t> block_out_channels{128, 256, 512, 512};  // one per block, full resolution first
  int64_t layers_per_block = 2;  // resnets per encoder block; the decoder's blocks have one more
  int64_t norm_num_groups = 32;
  int64_t sample_size = 256;     // the training resolution (informational: any multiple of downsampling() runs)
  // The latent the flow trains on is (sample − shift_factor)·scaling_factor. diffusers' default 0.18215 applies
  // when config.json has no scaling_factor (sd-vae-ft-ema's has none).
  double scaling_factor = 0.18215;
  double shift_factor = 0.0;

  int64_t num_blocks() const { return static_cast<int64_t>(block_out_channels.size()); }
  int64_t downsampling() const { return int64_t{1} << (block_out_channels.size() - 1); }

  // Throws std::invalid_argument("<source>: key 'x': problem").
  void validate(const std::string& source) const;

  // Parses a diffusers config.json. `source` names the file in errors. The architecture keys (in/out/latent
  // channels, block_out_channels, layers_per_block, norm_num_groups) must be present; act_fn and the block types
  // may be absent (diffusers' defaults, silu and DownEncoderBlock2D/UpDecoderBlock2D, are what is implemented).
  static SdVaeConfig from_json(const std::string& json_text, const std::string& source);
  // stabilityai/sd-vae-ft-ema's config.json (README_TEXT_AND_VAE §6.2): the default for a checkpoint that comes
  // without one (a CompVis/LDM single file).
  static SdVaeConfig sd_vae_ft_ema();
};

}  // namespace starflow::core
