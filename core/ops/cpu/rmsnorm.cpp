// RMSNorm with unit offset (STARFlow's final_norm) forward/backward for the CPU backend. The mean square
// is accumulated in double even for float tensors, matching the spec's "computed in fp32" intent with margin.
#include "core/ops/cpu/rmsnorm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/ops/cpu/normalize_transposed.h"

namespace starflow::core::cpu {

namespace {

// Below this many elements a fork/join costs more than the loop it would split.
constexpr int64_t kParallelElements = 32 * 1024;

// dg is summed over rows by column blocks (see layernorm.cpp): race-free, no scratch, and the same
// summation order for any thread count.
constexpr int64_t kColumnBlock = 64;

// 1/√(mean(x²) + eps) of one row, accumulated in double.
template <class T>
T row_rrms(const T* x, int64_t C, T eps) {
  double sq = 0.0;
#pragma omp simd reduction(+ : sq)
  for (int64_t j = 0; j < C; ++j) sq += static_cast<double>(x[j]) * static_cast<double>(x[j]);
  return static_cast<T>(1.0 / std::sqrt(sq / static_cast<double>(C) + static_cast<double>(eps)));
}

}  // namespace

template <class T>
void rmsnorm_forward(T* out, T* rrms, const T* in, const T* g, int64_t rows, int64_t C, T eps) {
#pragma omp parallel for schedule(static) if (rows * C > kParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    const T* x = in + r * C;
    rrms[r] = row_rrms(x, C, eps);
    const T rr_t = rrms[r];
    T* y = out + r * C;
    for (int64_t j = 0; j < C; ++j) y[j] = x[j] * rr_t * (T(1) + g[j]);
  }
}

#ifdef STARFLOW_SMALL_BATCH_KERNEL
void rmsnorm_transposed_team(float* xt, float* rrms, const float* in, const float* g, int64_t M, int64_t C,
                             float eps) {
  // As layernorm_transposed_team: every thread computes every row's statistic, no barrier in between.
  const int64_t Mp = small_batch_padded_rows(M);
  thread_local std::vector<float> stats;
  stats.assign(2 * Mp, 0.f);
  float *zero = stats.data(), *rr = stats.data() + Mp;
  for (int64_t r = 0; r < M; ++r) rr[r] = row_rrms(in + r * C, C, eps);
  if (omp_get_thread_num() == 0) std::copy(rr, rr + M, rrms);
  normalize_transposed_team(xt, in, M, C, zero, rr, g, nullptr, /*unit_offset=*/true);
}
#endif

template <class T>
void rmsnorm_backward(T* din, T* dg, const T* dout, const T* in, const T* rrms, const T* g, int64_t rows,
                      int64_t C, bool accumulate_din) {
  const bool parallel = rows * C > kParallelElements;
  // With d = dout·(1+g) and ρ = rrms: din = ρ·d − ρ³·x·mean(d·x); the second term is the change of ρ
  // itself with x.
  if (din != nullptr) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t r = 0; r < rows; ++r) {
      const T* x = in + r * C;
      const T* dy = dout + r * C;
      double sum_dx = 0.0;
#pragma omp simd reduction(+ : sum_dx)
      for (int64_t j = 0; j < C; ++j) {
        sum_dx += static_cast<double>(dy[j]) * (1.0 + static_cast<double>(g[j])) * static_cast<double>(x[j]);
      }
      const double rr = static_cast<double>(rrms[r]);
      const T rr_t = rrms[r];
      const T coef = static_cast<T>(rr * rr * rr * sum_dx / static_cast<double>(C));
      T* dx = din + r * C;
      if (accumulate_din) {
        for (int64_t j = 0; j < C; ++j) dx[j] += rr_t * dy[j] * (T(1) + g[j]) - coef * x[j];
      } else {
        for (int64_t j = 0; j < C; ++j) dx[j] = rr_t * dy[j] * (T(1) + g[j]) - coef * x[j];
      }
    }
  }

  // dg += Σ_rows dout·x·ρ (skipped when dg is null: an input-gradient-only pass).
  if (dg == nullptr) return;
  const int64_t blocks = (C + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, C - j0);
    double acc[kColumnBlock] = {};
    for (int64_t r = 0; r < rows; ++r) {
      const T* x = in + r * C + j0;
      const T* dy = dout + r * C + j0;
      const double rr = static_cast<double>(rrms[r]);
      for (int64_t j = 0; j < width; ++j) acc[j] += static_cast<double>(dy[j]) * static_cast<double>(x[j]) * rr;
    }
    for (int64_t j = 0; j < width; ++j) dg[j0 + j] += static_cast<T>(acc[j]);
  }
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int64_t, int64_t, float);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int64_t, int64_t, double);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*, const float*,
                                      int64_t, int64_t, bool);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*, const double*,
                                       const double*, int64_t, int64_t, bool);

}  // namespace starflow::core::cpu
