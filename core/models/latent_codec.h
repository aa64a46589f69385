// What the pipeline needs of an autoencoder (spec §1.1), whatever it is inside: images in [−1, 1] ↔ raw
// latents, a Gaussian posterior's mean and log-variance where it has one (the SD-VAE), and the affine map to
// the flow's latents, flow = (raw − shift)·scaling. The jobs (preprocess, previews, sample, demo) see only this.
#pragma once
#include <cstdint>
#include <string>

namespace starflow::core {

class LatentCodec {
 public:
  virtual ~LatentCodec() = default;
  // What shards record as their autoencoder (the file or checkpoint name).
  virtual std::string name() const = 0;
  virtual int64_t image_channels() const = 0;
  virtual int64_t image_size() const = 0;  // H = W of the images it encodes and decodes here
  // Encode and decode at another resolution from now on; throws std::invalid_argument (the problem, for the caller
  // to prefix with the path) where it cannot: the small autoencoder works at its training size only, the SD-VAE
  // at multiples of its downsampling.
  virtual void set_image_size(int64_t size) = 0;
  virtual int64_t latent_channels() const = 0;
  virtual int64_t latent_size() const = 0;  // h = w
  virtual double scaling_factor() const = 0;
  virtual double shift_factor() const = 0;
  // Whether encode() gives a log-variance (a Gaussian posterior) or the latents are deterministic.
  virtual bool has_posterior_variance() const = 0;
  // images [B, C, S, S] in [−1, 1] → the posterior mean [B, c, s, s] in raw latent units and, when the codec has
  // one and logvar is not null, its log-variance.
  virtual void encode(const float* images, int64_t B, float* mean, float* logvar) = 0;
  // Raw latents [B, c, s, s] → images [B, C, S, S], not clamped.
  virtual void decode(const float* latents, int64_t B, float* images) = 0;

  int64_t image_numel() const { return image_channels() * image_size() * image_size(); }
  int64_t latent_numel() const { return latent_channels() * latent_size() * latent_size(); }
};

}  // namespace starflow::core
