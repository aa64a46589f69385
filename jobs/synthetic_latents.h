// Synthetic class-conditional latents (spec §13(a)): class k is a fixed smooth mean image μ_k plus a rank-8
// Gaussian (scale 0.5) plus 0.05 iid noise. Every sample is a pure function of (seed, index), so any rank
// count sees the same global batches and a cursor is just a position. The exact class-conditional density is
// Gaussian, which gives tests a ground-truth NLL floor.
#pragma once
#include <cstdint>
#include <vector>

#include "jobs/batch_source.h"

namespace starflow::jobs {

class SyntheticLatents final : public BatchSource {
 public:
  SyntheticLatents(int64_t channels, int64_t size, int64_t classes, uint64_t seed, int64_t global_batch, int dp_rank,
                   int dp_size);
  TrainBatch next() override;
  nlohmann::json cursor() const override { return {{"position", position_}}; }
  void restore(const nlohmann::json& c) override { position_ = c.at("position").get<int64_t>(); }
  int64_t num_classes() const override { return classes_; }
  // Sample `index` of the stream into x [C, H, W]; returns its label.
  int64_t sample(int64_t index, float* x) const;

 private:
  int64_t C_, H_, classes_, global_batch_, position_ = 0;
  uint64_t seed_;
  int rank_, dp_;
  std::vector<float> means_;   // [classes, C·H·W]
  std::vector<float> factors_; // [classes, rank 8, C·H·W]
};

}  // namespace starflow::jobs
