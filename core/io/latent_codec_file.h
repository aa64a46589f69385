// Opens whatever autoencoder a path names as a LatentCodec: the project's convolutional autoencoder (a
// .safetensors file with its config in the metadata) or a Stable-Diffusion VAE (a diffusers model or pipeline
// directory, or one .safetensors file under diffusers or CompVis/LDM names: core/io/sd_vae_weights.h). Throws one
// line naming the path and the problem.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/models/latent_codec.h"

namespace starflow::core::io {

// image_size: the resolution to encode and decode at for an autoencoder of any size (0: its own, the SD-VAE
// config's sample_size; the small autoencoder only takes its own).
std::unique_ptr<LatentCodec> open_latent_codec(const std::string& path, int64_t image_size = 0);

}  // namespace starflow::core::io
