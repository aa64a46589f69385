// open_latent_codec: which kind of autoencoder a path holds, from its contents.
#include "core/io/latent_codec_file.h"

#include <filesystem>

#include "core/io/autoencoder_weights.h"
#include "core/models/conv_autoencoder_codec.h"

namespace starflow::core::io {

std::unique_ptr<LatentCodec> open_latent_codec(const std::string& path) {
  return std::make_unique<ConvAutoencoderCodec>(load_autoencoder<float>(path),
                                                std::filesystem::path(path).filename().string());
}

}  // namespace starflow::core::io
