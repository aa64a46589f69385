// The sampling job: load official-name weights, draw noise from a seed, decode (sequential or Jacobi,
// guided or not), optionally denoise, and write the latents.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace starflow::jobs {

struct SampleJobOptions {
  std::string weights;        // safetensors with official names and `config` metadata
  std::string output;         // latents [B, C, H, W]: .safetensors, or .h5 for a latent shard
  std::string autoencoder;    // decodes the latents for the grid
  std::string grid;           // PNG grid of the decoded samples (needs autoencoder)
  int64_t grid_columns = 0;   // 0: ⌈√B⌉
  std::vector<int64_t> classes;  // class ids, repeated over the batch; empty: the null class
  std::string caption;        // text conditioning (needs a text encoder)
  double cfg = 0;             // guidance weight w ≥ 0
  bool jacobi = false;
  int64_t jacobi_block_size = 16, jacobi_max_iter = 32;
  double jacobi_threshold = 1e-3;
  uint64_t seed = 0;
  int64_t batch = 16;
  bool denoise = false;
  double noise_std = 0.3;     // σ_n of the denoising step (the training noise level)
};

struct SampleJobResult {
  std::vector<float> latents;  // [B, C, H, W]
  std::vector<int64_t> shape;
  double seconds = 0;
};

// Validates everything before any work; throws std::runtime_error with one line naming the file or the
// option at fault. Writes options.output (atomically) when it is non-empty.
SampleJobResult run_sample_job(const SampleJobOptions& options);

}  // namespace starflow::jobs
