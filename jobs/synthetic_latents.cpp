// SyntheticLatents: smooth class means from a few random low-frequency cosines, low-rank factors from
// a seeded generator, samples from a per-index generator.
#include "jobs/synthetic_latents.h"

#include <cmath>
#include <stdexcept>

#include "core/random.h"

namespace starflow::jobs {
namespace {
constexpr int kRank = 8;
constexpr double kFactorScale = 0.5, kIidScale = 0.05;

uint64_t mix(uint64_t a, uint64_t b) {
  core::Rng r(a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull));
  return r.next_u64();
}
}  // namespace

SyntheticLatents::SyntheticLatents(int64_t channels, int64_t size, int64_t classes, uint64_t seed,
                                   int64_t global_batch, int dp_rank, int dp_size)
    : C_(channels), H_(size), classes_(classes), global_batch_(global_batch), seed_(seed), rank_(dp_rank),
      dp_(dp_size) {
  if (global_batch % dp_size != 0)
    throw std::invalid_argument("batch_size " + std::to_string(global_batch) + " is not divisible by the " +
                                std::to_string(dp_size) + " data-parallel ranks");
  const int64_t n = C_ * H_ * H_;
  means_.resize(std::max<int64_t>(classes, 1) * n);
  factors_.resize(std::max<int64_t>(classes, 1) * kRank * n);
  core::Rng rng(mix(seed, 0xC1A55));
  for (int64_t k = 0; k < std::max<int64_t>(classes, 1); ++k) {
    for (int64_t c = 0; c < C_; ++c) {
      const double fy = rng.uniform(0.5, 2.0), fx = rng.uniform(0.5, 2.0), py = rng.uniform(0, 6.28),
                   px = rng.uniform(0, 6.28), amp = rng.uniform(0.5, 1.5);
      for (int64_t y = 0; y < H_; ++y)
        for (int64_t x = 0; x < H_; ++x)
          means_[k * n + (c * H_ + y) * H_ + x] =
              float(amp * std::cos(fy * 6.28 * y / H_ + py) * std::cos(fx * 6.28 * x / H_ + px));
    }
    for (int64_t i = 0; i < kRank * n; ++i) factors_[k * kRank * n + i] = float(kFactorScale * rng.normal() / std::sqrt(double(kRank)));
  }
}

int64_t SyntheticLatents::sample(int64_t index, float* x) const {
  core::Rng rng(mix(seed_, static_cast<uint64_t>(index) + 1));
  const int64_t label = classes_ > 0 ? static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(classes_)) : 0;
  const int64_t n = C_ * H_ * H_;
  double z[kRank];
  for (double& v : z) v = rng.normal();
  for (int64_t i = 0; i < n; ++i) {
    double v = means_[label * n + i] + kIidScale * rng.normal();
    for (int r = 0; r < kRank; ++r) v += z[r] * factors_[(label * kRank + r) * n + i];
    x[i] = float(v);
  }
  return label;
}

TrainBatch SyntheticLatents::next() {
  const int64_t local = global_batch_ / dp_, n = C_ * H_ * H_;
  TrainBatch b;
  b.size = local;
  b.position = position_;
  b.latents.resize(local * n);
  b.labels.resize(local);
  for (int64_t i = 0; i < local; ++i) b.labels[i] = sample(position_ + rank_ * local + i, b.latents.data() + i * n);
  position_ += global_batch_;
  return b;
}

}  // namespace starflow::jobs
