// T5's RMSNorm forward/backward on the CPU. Upstream computes the mean square in float32 even for half-precision
// inputs; here it is accumulated in double (as rmsnorm.cpp does), which is within the fixtures' tolerance of
// either. Rows are independent and dw is summed by column blocks, so results do not depend on the thread count.
#include "core/ops/cpu/rmsnorm_gain.h"

#include <algorithm>
#include <cmath>

namespace starflow::core::cpu {

namespace {

constexpr int64_t kParallelElements = 32 * 1024;
constexpr int64_t kColumnBlock = 64;

}  // namespace

template <class T>
void rmsnorm_gain_forward(T* out, T* rrms, const T* in, const T* w, int64_t rows, int64_t C, T eps) {
#pragma omp parallel for schedule(static) if (rows * C > kParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    const T* x = in + r * C;
    double sq = 0.0;
#pragma omp simd reduction(+ : sq)
    for (int64_t j = 0; j < C; ++j) sq += static_cast<double>(x[j]) * static_cast<double>(x[j]);
    const T rr = static_cast<T>(1.0 / std::sqrt(sq / static_cast<double>(C) + static_cast<double>(eps)));
    rrms[r] = rr;
    T* y = out + r * C;
    for (int64_t j = 0; j < C; ++j) y[j] = w[j] * (x[j] * rr);  // upstream's order: normalise, then the gain
  }
}

template <class T>
void rmsnorm_gain_backward(T* din, T* dw, const T* dout, const T* in, const T* rrms, const T* w, int64_t rows,
                           int64_t C, bool accumulate_din) {
  const bool parallel = rows * C > kParallelElements;
  // With d = dout ⊙ w and ρ = rrms: din = ρ·d − ρ³·x·mean(d ⊙ x), the second term from ρ's own dependence on x.
  if (din != nullptr) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t r = 0; r < rows; ++r) {
      const T* x = in + r * C;
      const T* dy = dout + r * C;
      double dot = 0.0;
      for (int64_t j = 0; j < C; ++j)
        dot += static_cast<double>(dy[j]) * static_cast<double>(w[j]) * static_cast<double>(x[j]);
      const double rr = static_cast<double>(rrms[r]);
      const T rr_t = rrms[r];
      const T coef = static_cast<T>(rr * rr * rr * dot / static_cast<double>(C));
      T* dx = din + r * C;
      for (int64_t j = 0; j < C; ++j) {
        const T value = rr_t * dy[j] * w[j] - coef * x[j];
        dx[j] = accumulate_din ? dx[j] + value : value;
      }
    }
  }
  if (dw == nullptr) return;
  // dw += Σ_rows dout ⊙ x·ρ, by column blocks (race-free, the same summation order for any thread count).
  const int64_t blocks = (C + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kColumnBlock, width = std::min(kColumnBlock, C - j0);
    double acc[kColumnBlock] = {};
    for (int64_t r = 0; r < rows; ++r) {
      const T* x = in + r * C + j0;
      const T* dy = dout + r * C + j0;
      const double rr = static_cast<double>(rrms[r]);
      for (int64_t j = 0; j < width; ++j) acc[j] += static_cast<double>(dy[j]) * static_cast<double>(x[j]) * rr;
    }
    for (int64_t j = 0; j < width; ++j) dw[j0 + j] += static_cast<T>(acc[j]);
  }
}

template void rmsnorm_gain_forward<float>(float*, float*, const float*, const float*, int64_t, int64_t, float);
template void rmsnorm_gain_forward<double>(double*, double*, const double*, const double*, int64_t, int64_t, double);
template void rmsnorm_gain_backward<float>(float*, float*, const float*, const float*, const float*, const float*,
                                           int64_t, int64_t, bool);
template void rmsnorm_gain_backward<double>(double*, double*, const double*, const double*, const double*,
                                            const double*, int64_t, int64_t, bool);

}  // namespace starflow::core::cpu
