// The sampling job: load official-name weights, draw noise from a seed, decode (sequential or Jacobi,
// guided or not), optionally denoise, and write the latents. Its pieces (conditioning rows, the decode
// through the autoencoder) are shared with the training previews and the demos.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "core/models/flow_config.h"
#include "core/models/latent_codec.h"
#include "core/models/text_encoder.h"
#include "core/models/word_vector_encoder.h"
#include "data/io/npm_cache.h"
#include "jobs/latent_sampling.h"

namespace starflow::jobs {

struct SampleJobOptions {
  std::string weights;        // safetensors with official names and `config` metadata
  std::string output;         // latents [B, C, H, W]: .safetensors, or .h5 for a latent shard
  std::string autoencoder;    // decodes the latents for the grid
  std::string grid;           // PNG grid of the decoded samples (needs autoencoder)
  int64_t grid_columns = 0;   // 0: ⌈√B⌉
  std::vector<int64_t> classes;        // class ids, repeated over the batch; empty: the null class
  std::vector<std::string> captions;   // text conditions, repeated over the batch (text-conditioned models)
  std::string text_encoder;   // a T5 folder or a word-vector file; empty: the npm cache's word vectors
  double cfg = 0;             // guidance weight w ≥ 0
  bool jacobi = false;
  int64_t jacobi_block_size = 16, jacobi_max_iter = 32;
  double jacobi_threshold = 1e-3;
  double attention_temperature = 1;  // divides every attention logit in sequential decoding (official attn_temp)
  uint64_t seed = 0;
  int64_t batch = 16;
  bool denoise = false;
  double noise_std = 0.3;     // σ_n of the denoising step (the training noise level)
  // Tensor parallelism: every rank of this group runs the job (the deep block and its KV cache are split
  // over it by heads); TP rank 0 writes the outputs. nullptr: one process.
  core::Communicator* tp = nullptr;
  // Where the model samples: empty, the CPU; `starflow sample --device cuda` sets the GPU's
  // (jobs/cuda/cuda_sampling.h).
  LatentSampler sampler;
};

struct SampleJobResult {
  std::vector<float> latents;  // [B, C, H, W]
  std::vector<int64_t> shape;
  double seconds = 0;
};

// Validates everything before any work; throws std::runtime_error with one line naming the file or the
// option at fault. Writes options.output (atomically) when it is non-empty.
SampleJobResult run_sample_job(const SampleJobOptions& options);

// The conditioning of a batch: y [B, L, E] and the null condition y_null [B, L, E] that guidance contrasts
// it with. Both are empty for an unconditional model.
struct Conditioning {
  std::vector<float> y, y_null;
};

// A model is class-conditional when its prefix is one one-hot token (txt_size 1, txt_dim = classes + 1, the
// null class last), text-conditional when the prefix is longer.
bool is_class_conditional(const core::FlowConfig& model);

// One-hot rows: sample b gets class labels[b], -1 meaning the null class. Throws naming the valid range.
Conditioning class_conditioning(const core::FlowConfig& model, std::span<const int64_t> labels);

// The word-vector text encoder sized for a text-conditioned model (L = txt_size); throws naming the
// vectors file when it is missing or its dimension is not the model's txt_dim. Empty path: the npm cache.
core::WordVectorTextEncoder word_vector_encoder_for(const core::FlowConfig& model, const std::string& vectors_path = "");
// The text encoder at `path` (a T5 folder or a word-vector file: core/io/text_encoder_file.h; empty: the npm
// cache's word vectors) sized for the model (L = txt_size); throws naming the path when its dimension is not
// the model's txt_dim.
std::unique_ptr<core::TextEncoder> text_encoder_for(const core::FlowConfig& model, const std::string& path = "");

// Caption rows: sample b gets captions[b] ("" is the null caption); y_null repeats the empty caption's row.
Conditioning caption_conditioning(const core::FlowConfig& model, core::TextEncoder& encoder,
                                  std::span<const std::string> captions);

// Opens the autoencoder at `path` (core/io/latent_codec_file.h) and checks that it decodes the model's latents;
// throws "<path>: makes latents of ..." when it does not.
std::unique_ptr<core::LatentCodec> load_autoencoder_for(const core::FlowConfig& model, const std::string& path);

// Flow latents [B, C, h, w] → images [B, Cimg, S, S] in [−1, 1]: undoes the shift and scaling the
// preprocessing applied ((z − shift)·scaling) and decodes.
std::vector<float> decode_latents(core::LatentCodec& autoencoder, std::span<const float> latents, int64_t B);

}  // namespace starflow::jobs
