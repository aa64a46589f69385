// Opens whatever autoencoder a path names as a LatentCodec: the project's convolutional autoencoder (a
// .safetensors file with its config in the metadata). Throws one line naming the path and the problem.
#pragma once
#include <memory>
#include <string>

#include "core/models/latent_codec.h"

namespace starflow::core::io {

std::unique_ptr<LatentCodec> open_latent_codec(const std::string& path);

}  // namespace starflow::core::io
