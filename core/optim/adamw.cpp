// AdamW update and the learning-rate schedule.
#include "core/optim/adamw.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace starflow::core {

template <class T>
void AdamW<T>::step(std::span<T> params, std::span<const T> grads, double lr) {
  ++step_;
  update_range(params, grads, lr, base_, base_ + static_cast<int64_t>(m_.size()));
}

template <class T>
void AdamW<T>::update_range(std::span<T> params, std::span<const T> grads, double lr, int64_t begin, int64_t end) {
  if (begin < base_ || end > base_ + static_cast<int64_t>(m_.size()) || end > static_cast<int64_t>(params.size()))
    throw std::out_of_range("AdamW::update_range: [" + std::to_string(begin) + ", " + std::to_string(end) +
                            ") is outside the optimizer's moments");
  adamw_update_range(params.data(), m_.data(), v_.data(), grads.data(), begin, end, base_, cfg_, lr, step_);
}

template <class T>
void adamw_update_range(T* p, T* m, T* v, const T* g, int64_t begin, int64_t end, int64_t base, const AdamWConfig& cfg,
                        double lr, int64_t step) {
  const double bc1 = 1.0 - std::pow(cfg.beta1, double(step));
  const double bc2 = 1.0 - std::pow(cfg.beta2, double(step));
  // PyTorch: p ← p·(1 − lr·wd); p ← p − (lr/bc1)·m / (√v/√bc2 + eps)
  const T decay = T(1.0 - lr * cfg.weight_decay), step_size = T(lr / bc1), inv_sqrt_bc2 = T(1.0 / std::sqrt(bc2));
  const T b1 = T(cfg.beta1), b2 = T(cfg.beta2), eps = T(cfg.eps);
#pragma omp parallel for simd if (end - begin > (1 << 16))
  for (int64_t i = begin; i < end; ++i) {
    p[i] *= decay;
    const int64_t j = i - base;  // moment j is flat element base + j
    m[j] = b1 * m[j] + (T(1) - b1) * g[i];
    v[j] = b2 * v[j] + (T(1) - b2) * g[i] * g[i];
    p[i] -= step_size * m[j] / (std::sqrt(v[j]) * inv_sqrt_bc2 + eps);
  }
}

double WarmupCosineSchedule::lr(int64_t n) const {
  const double start = std::min(min_lr, 1e-6);
  double value;
  if (n <= warmup_steps && warmup_steps > 0) {
    value = start + (double(n) / warmup_steps) * (peak_lr - start);
  } else {
    const int64_t span = std::max<int64_t>(1, total_steps - warmup_steps);
    const double progress = std::min(1.0, double(n - warmup_steps) / span);
    value = min_lr + 0.5 * (1.0 + std::cos(M_PI * progress)) * (peak_lr - min_lr);
  }
  return std::clamp(value, min_lr, std::max(min_lr, peak_lr));
}

template class AdamW<float>;
template class AdamW<double>;
template void adamw_update_range<float>(float*, float*, float*, const float*, int64_t, int64_t, int64_t,
                                        const AdamWConfig&, double, int64_t);
template void adamw_update_range<double>(double*, double*, double*, const double*, int64_t, int64_t, int64_t,
                                         const AdamWConfig&, double, int64_t);

}  // namespace starflow::core
