// The Stable-Diffusion VAE (core/models/sd_vae.h) as a LatentCodec: a Gaussian posterior (mean and log-variance),
// the config's scaling and shift factors, any image size that is a multiple of its downsampling (the config's
// sample_size unless told otherwise). Batches run in passes of a few images so the full-resolution activations
// (block_out_channels[0]·H·W per image, 32 MiB at 256² for sd-vae-ft-ema) stay bounded whatever B is.
#pragma once
#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/backends/cpu/cpu_backend.h"
#include "core/models/latent_codec.h"
#include "core/models/sd_vae.h"

namespace starflow::core {

class SdVaeCodec final : public LatentCodec {
 public:
  // image_size 0: the config's sample_size.
  SdVaeCodec(SdVae<CpuBackend<float>> model, std::string name, int64_t image_size = 0)
      : model_(std::move(model)), name_(std::move(name)),
        image_size_(model_.config().sample_size) {
    if (image_size > 0) set_image_size(image_size);
  }

  std::string name() const override { return name_; }
  int64_t image_channels() const override { return model_.config().in_channels; }
  int64_t image_size() const override { return image_size_; }
  void set_image_size(int64_t size) override {
    const int64_t f = model_.config().downsampling();
    if (size < f || size % f != 0)
      throw std::invalid_argument("image size " + std::to_string(size) +
                                  " is not a positive multiple of the VAE's downsampling factor " + std::to_string(f));
    image_size_ = size;
  }
  int64_t latent_channels() const override { return model_.config().latent_channels; }
  int64_t latent_size() const override { return image_size_ / model_.config().downsampling(); }
  double scaling_factor() const override { return model_.config().scaling_factor; }
  double shift_factor() const override { return model_.config().shift_factor; }
  bool has_posterior_variance() const override { return true; }

  void encode(const float* images, int64_t B, float* mean, float* logvar) override {
    const int64_t S = image_size_, in = image_numel(), out = latent_numel();
    if (!logvar) {
      scratch_.resize(static_cast<size_t>(std::min(B, pass_images()) * out));
    }
    for (int64_t b = 0; b < B; b += pass_images()) {
      const int64_t n = std::min(pass_images(), B - b);
      model_.encode(images + b * in, n, S, S, mean + b * out, logvar ? logvar + b * out : scratch_.data());
    }
  }
  void decode(const float* latents, int64_t B, float* images) override {
    const int64_t s = latent_size(), in = latent_numel(), out = image_numel();
    for (int64_t b = 0; b < B; b += pass_images()) {
      const int64_t n = std::min(pass_images(), B - b);
      model_.decode(latents + b * in, n, s, s, images + b * out);
    }
  }

  SdVae<CpuBackend<float>>& model() { return model_; }

 private:
  // Images per pass: the widest full-resolution activation of a pass under about 2^25 elements (128 MiB).
  int64_t pass_images() const {
    const int64_t per_image = model_.config().block_out_channels.front() * image_size_ * image_size_;
    return std::max<int64_t>(1, (int64_t{1} << 25) / per_image);
  }

  SdVae<CpuBackend<float>> model_;
  std::string name_;
  int64_t image_size_;
  std::vector<float> scratch_;  // the log-variance when the caller does not want it
};

}  // namespace starflow::core
