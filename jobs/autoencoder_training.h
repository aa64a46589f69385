// Training the project's convolutional autoencoder on images in [−1, 1] (what `starflow train-ae` runs):
// AdamW with warm-up + cosine, then held-out reconstruction error and the latent statistics that set
// the scaling factor the flow's noise augmentation relies on.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/models/autoencoder.h"

namespace starflow::jobs {

struct AutoencoderTrainingOptions {
  core::AutoencoderConfig model;  // image_channels and image_size must match the images
  int64_t steps = 2000;
  int64_t batch = 32;
  double lr = 4e-3;                // peak (on Fashion-MNIST 4e-3 beat 2e-3 by 0.6 dB at 1500 steps)
  double min_lr = 2e-4;            // the cosine's floor
  int64_t warmup_steps = 100;
  double weight_decay = 0.0;
  uint64_t seed = 0;               // initialisation and batch order
  core::AutoencoderLossWeights loss{0.0, 1e-4};
  int64_t progress_every = 50;     // steps between progress callbacks (the last step always reports)
  int64_t stats_images = 4096;     // training images encoded to measure the latent mean and std
};

struct AutoencoderTrainingProgress {
  int64_t step = 0, steps = 0;     // steps done, of steps
  double loss = 0;                 // mean total loss since the previous report
  double lr = 0;
  double images_per_second = 0;
  double elapsed_seconds = 0, eta_seconds = 0;
};

struct AutoencoderReconstruction {
  double mse = 0;   // mean((x̂ − x)²) over every pixel, pixels in [−1, 1]
  double psnr = 0;  // 10·log10(2² / mse): the [−1, 1] range is 2 wide (equal to PSNR on [0, 1] pixels)
};

struct AutoencoderTrainingResult {
  core::Autoencoder<float> model;  // its config carries the measured scaling_factor and shift_factor
  std::vector<double> train_loss;  // total loss of every step
  AutoencoderReconstruction heldout;
  double latent_mean = 0, latent_std = 0;  // of the raw latents over the statistics images
  double seconds = 0;                      // training wall time (without the held-out evaluation)
};

// images [N, C, H, W] and heldout [M, C, H, W] (M may be 0), float in [−1, 1]. Throws
// std::invalid_argument naming the option or the input at fault before any work, std::runtime_error if
// the loss stops being finite.
AutoencoderTrainingResult train_autoencoder(std::span<const float> images, std::span<const float> heldout,
                                            const AutoencoderTrainingOptions& options,
                                            const std::function<void(const AutoencoderTrainingProgress&)>& progress = {});

// Encodes and decodes `images` in batches and measures the reconstruction error.
AutoencoderReconstruction evaluate_reconstruction(core::Autoencoder<float>& model, std::span<const float> images,
                                                  int64_t batch = 64);

}  // namespace starflow::jobs
