// open_latent_codec: which kind of autoencoder a path holds, from its contents: the project's autoencoder file
// says so in its safetensors metadata ("format": "starflow-autoencoder-v1", beside its config); a directory
// (diffusers model or pipeline) or another .safetensors file of VAE tensors (diffusers or CompVis/LDM names) is an
// SD-VAE.
#include "core/io/latent_codec_file.h"

#include <filesystem>

#include "core/io/autoencoder_weights.h"
#include "core/io/files.h"
#include "core/io/safetensors.h"
#include "core/io/sd_vae_weights.h"
#include "core/models/conv_autoencoder_codec.h"
#include "core/models/sd_vae_codec.h"

namespace starflow::core::io {

namespace {

namespace fs = std::filesystem;

// A file of SD-VAE tensors under any of the names load_sd_vae accepts.
bool has_sd_vae_tensors(const SafeTensorsFile& file) {
  for (const std::string& name : sd_vae_tensor_names("encoder.conv_in.weight", 4))
    if (file.has(name)) return true;
  return false;
}

std::string display_name(const fs::path& path) {
  const fs::path p = path.has_filename() ? path : path.parent_path();
  return p.filename().string();
}

}  // namespace

std::unique_ptr<LatentCodec> open_latent_codec(const std::string& path, int64_t image_size) {
  if (!fs::exists(path)) fail_file(path, "no such file or directory (expected an autoencoder)");
  bool sd_vae = fs::is_directory(path);
  if (!sd_vae) {
    // The project's autoencoder names its tensors like diffusers' (encoder.conv_in.weight ...): its metadata tells.
    const SafeTensorsFile file = SafeTensorsFile::open(path);
    const auto format = file.metadata().find("format");
    const bool ours = format != file.metadata().end() && format->second.starts_with("starflow-autoencoder");
    sd_vae = !ours && has_sd_vae_tensors(file);
    if (!ours && !sd_vae)
      fail_file(path, "neither a starflow autoencoder (no 'format' metadata 'starflow-autoencoder-v1') nor an SD-VAE "
                      "(no encoder.conv_in.weight under the diffusers or CompVis/LDM names)");
  }
  std::unique_ptr<LatentCodec> codec;
  if (sd_vae) codec = std::make_unique<SdVaeCodec>(load_sd_vae<float>(path), display_name(path));
  else codec = std::make_unique<ConvAutoencoderCodec>(load_autoencoder<float>(path), display_name(path));
  if (image_size > 0) {
    try {
      codec->set_image_size(image_size);
    } catch (const std::invalid_argument& e) {
      fail_file(path, e.what());
    }
  }
  return codec;
}

}  // namespace starflow::core::io
