// Where training batches come from: latent shards (data/) or the synthetic generator. Each data-parallel
// rank gets its own part of every global batch; the cursor is saved in checkpoints and restores the
// exact next batch.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace starflow::jobs {

struct TrainBatch {
  int64_t size = 0;
  std::vector<float> latents;   // [B, C, H, W]: the latents, or a Gaussian posterior's means (scaled)
  std::vector<float> latent_std;  // [B, C, H, W] the posterior's σ in the same (scaled) units; empty: deterministic
  std::vector<int64_t> labels;  // [B] class ids (class-conditional data)
  std::vector<float> text;      // [B, L, E] text embeddings (text-conditional data)
  int64_t position = 0;         // global index of the first sample of the global batch (keys the step's noise)
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual TrainBatch next() = 0;
  virtual nlohmann::json cursor() const = 0;
  virtual void restore(const nlohmann::json& cursor) = 0;
  virtual int64_t num_classes() const = 0;  // 0 for unlabelled data
  // Text data: the null caption's embedding padded to [L, E], what condition dropout trains on; empty when
  // it is all zeros (the word-vector encoder) or the data has no text.
  virtual std::vector<float> null_condition() const { return {}; }
};

}  // namespace starflow::jobs
