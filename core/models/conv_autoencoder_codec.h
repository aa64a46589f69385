// The project's small convolutional autoencoder (core/models/autoencoder.h) as a LatentCodec: deterministic
// latents, its measured scaling and shift, the image size it was trained at.
#pragma once
#include <stdexcept>
#include <string>
#include <utility>

#include "core/models/autoencoder.h"
#include "core/models/latent_codec.h"

namespace starflow::core {

class ConvAutoencoderCodec final : public LatentCodec {
 public:
  ConvAutoencoderCodec(Autoencoder<float> model, std::string name) : model_(std::move(model)), name_(std::move(name)) {}

  std::string name() const override { return name_; }
  int64_t image_channels() const override { return model_.config().image_channels; }
  int64_t image_size() const override { return model_.config().image_size; }
  void set_image_size(int64_t size) override {
    if (size != image_size())
      throw std::invalid_argument("this autoencoder works at " + std::to_string(image_size()) + "×" +
                                  std::to_string(image_size()) + " only, not " + std::to_string(size));
  }
  int64_t latent_channels() const override { return model_.config().latent_channels; }
  int64_t latent_size() const override { return model_.config().latent_size(); }
  double scaling_factor() const override { return model_.config().scaling_factor; }
  double shift_factor() const override { return model_.config().shift_factor; }
  bool has_posterior_variance() const override { return false; }
  void encode(const float* images, int64_t B, float* mean, float*) override { model_.encode(images, B, mean); }
  void decode(const float* latents, int64_t B, float* images) override { model_.decode(latents, B, images); }

  Autoencoder<float>& model() { return model_; }

 private:
  Autoencoder<float> model_;
  std::string name_;
};

}  // namespace starflow::core
