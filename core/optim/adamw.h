// AdamW exactly as torch.optim.AdamW (decoupled weight decay on every parameter, bias-corrected moments),
// and the warm-up + cosine learning-rate schedule of the STARFlow recipe (spec §8.1).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace starflow::core {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 1e-4;
};

template <class T>
class AdamW {
 public:
  // Moments for the elements [base, base + size) of the flat buffers (ZeRO-1: one data-parallel rank's part).
  AdamW(int64_t size, AdamWConfig cfg, int64_t base = 0) : cfg_(cfg), m_(size, T(0)), v_(size, T(0)), base_(base) {}
  // One step at learning rate lr over the flat buffers (step counter advances first, as in PyTorch).
  void step(std::span<T> params, std::span<const T> grads, double lr);
  // A step over the sub-range [begin, end) of the flat buffers (within the moments' range) with the same
  // step count (ZeRO-1 shards call this; step() is update_range over all the moments cover).
  void update_range(std::span<T> params, std::span<const T> grads, double lr, int64_t begin, int64_t end);
  int64_t steps() const { return step_; }
  void set_steps(int64_t s) { step_ = s; }
  std::vector<T>& first_moment() { return m_; }   // element i is flat element base() + i
  std::vector<T>& second_moment() { return v_; }
  const std::vector<T>& first_moment() const { return m_; }
  const std::vector<T>& second_moment() const { return v_; }
  int64_t base() const { return base_; }
  const AdamWConfig& config() const { return cfg_; }

 private:
  AdamWConfig cfg_;
  std::vector<T> m_, v_;
  int64_t base_ = 0;
  int64_t step_ = 0;
};

// One AdamW update of the flat elements [begin, end) at optimiser step `step` (counted from 1): params p and
// gradients g indexed by flat element, moments m and v by flat element − base. The CPU's update; the CUDA
// kernel (core/ops/cuda/adamw.h) does the same arithmetic.
template <class T>
void adamw_update_range(T* p, T* m, T* v, const T* g, int64_t begin, int64_t end, int64_t base, const AdamWConfig& cfg,
                        double lr, int64_t step);

// lr(n) for optimiser step n (0-based, the step about to be taken): linear warm-up from min(min_lr, 1e-6)
// to peak over warmup_steps, then cosine to min_lr at total_steps. The reference ignores values outside
// [min_lr, peak] (keeps the previous lr); since the warm-up only starts below min_lr, that equals
// max(min_lr, ·), and steps past total_steps stay at min_lr.
struct WarmupCosineSchedule {
  double peak_lr = 1e-3, min_lr = 1e-6;
  int64_t warmup_steps = 0, total_steps = 1;
  double lr(int64_t n) const;
};

}  // namespace starflow::core
