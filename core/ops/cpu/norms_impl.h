// The training norms' bodies (LayerNorm; RMSNorm with STARFlow's unit-offset gain 1 + g or T5's plain gain w),
// written once and compiled at two widths: included by layernorm.cpp, rmsnorm.cpp and rmsnorm_gain.cpp (the
// build's baseline ISA) and by norms_avx512.cpp (AVX-512). Everything here has internal linkage, so each file
// keeps its own copy compiled for its ISA (see core/ops/cpu/small_batch_avx512.h).
// Row statistics are accumulated in double even for float tensors, so long rows cannot lose the mean to
// cancellation and float stays close to the reference. Parameter gradients are summed over rows by column
// blocks rather than per-thread partials: no scratch, no races, and the same summation order for any thread
// count, which keeps training bit-reproducible when OMP_NUM_THREADS changes. The vector width groups the double
// sums differently, so the two widths agree to rounding, not bit for bit.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace starflow::core::cpu {
namespace {  // NOLINT(build/namespaces): internal linkage per including file is the point (above)

// Below this many elements a fork/join costs more than the loop it would split.
constexpr int64_t kNormParallelElements = 32 * 1024;
constexpr int64_t kNormColumnBlock = 64;

// Mean and 1/std of one row, in double. Two-pass variance: the one-pass E[x²]−E[x]² form cancels badly
// when |mean| ≫ std.
template <class T>
void row_statistics(const T* x, int64_t C, T eps, T& mean, T& rstd) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < C; ++j) sum += static_cast<double>(x[j]);
  const double mu = sum / static_cast<double>(C);
  double sq = 0.0;
#pragma omp simd reduction(+ : sq)
  for (int64_t j = 0; j < C; ++j) {
    const double d = static_cast<double>(x[j]) - mu;
    sq += d * d;
  }
  mean = static_cast<T>(mu);
  rstd = static_cast<T>(1.0 / std::sqrt(sq / static_cast<double>(C) + static_cast<double>(eps)));
}

// 1/√(mean(x²) + eps) of one row, accumulated in double.
template <class T>
T row_rrms(const T* x, int64_t C, T eps) {
  double sq = 0.0;
#pragma omp simd reduction(+ : sq)
  for (int64_t j = 0; j < C; ++j) sq += static_cast<double>(x[j]) * static_cast<double>(x[j]);
  return static_cast<T>(1.0 / std::sqrt(sq / static_cast<double>(C) + static_cast<double>(eps)));
}

template <class T>
void layernorm_forward_body(T* out, T* mean, T* rstd, const T* in, const T* gamma, const T* beta, int64_t rows,
                            int64_t C, T eps) {
#pragma omp parallel for schedule(static) if (rows * C > kNormParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    const T* x = in + r * C;
    row_statistics(x, C, eps, mean[r], rstd[r]);
    const T mu_t = mean[r], rs_t = rstd[r];
    T* y = out + r * C;
    for (int64_t j = 0; j < C; ++j) y[j] = (x[j] - mu_t) * rs_t * gamma[j] + beta[j];
  }
}

template <class T>
void layernorm_backward_body(T* din, T* dgamma, T* dbeta, const T* dout, const T* in, const T* mean, const T* rstd,
                             const T* gamma, int64_t rows, int64_t C, bool accumulate_din) {
  const bool parallel = rows * C > kNormParallelElements;
  // din = rstd · (g − mean(g) − x̂·mean(g·x̂)), g = dout·γ: the projection that removes the two
  // directions (shift, scale) the normalisation is invariant to.
  if (din != nullptr) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t r = 0; r < rows; ++r) {
      const T* x = in + r * C;
      const T* dy = dout + r * C;
      const T mu = mean[r], rs = rstd[r];
      double sum_g = 0.0, sum_gx = 0.0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
      for (int64_t j = 0; j < C; ++j) {
        const double g = static_cast<double>(dy[j]) * static_cast<double>(gamma[j]);
        const double xhat = (static_cast<double>(x[j]) - static_cast<double>(mu)) * static_cast<double>(rs);
        sum_g += g;
        sum_gx += g * xhat;
      }
      const T mean_g = static_cast<T>(sum_g / static_cast<double>(C));
      const T mean_gx = static_cast<T>(sum_gx / static_cast<double>(C));
      T* dx = din + r * C;
      if (accumulate_din) {
        for (int64_t j = 0; j < C; ++j) dx[j] += rs * (dy[j] * gamma[j] - mean_g - (x[j] - mu) * rs * mean_gx);
      } else {
        for (int64_t j = 0; j < C; ++j) dx[j] = rs * (dy[j] * gamma[j] - mean_g - (x[j] - mu) * rs * mean_gx);
      }
    }
  }

  // dγ += Σ_rows dout·x̂, dβ += Σ_rows dout (skipped when null: an input-gradient-only pass).
  if (dgamma == nullptr || dbeta == nullptr) return;
  const int64_t blocks = (C + kNormColumnBlock - 1) / kNormColumnBlock;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kNormColumnBlock;
    const int64_t width = C - j0 < kNormColumnBlock ? C - j0 : kNormColumnBlock;
    double acc_gamma[kNormColumnBlock] = {};
    double acc_beta[kNormColumnBlock] = {};
    for (int64_t r = 0; r < rows; ++r) {
      const T* x = in + r * C + j0;
      const T* dy = dout + r * C + j0;
      const double mu = static_cast<double>(mean[r]), rs = static_cast<double>(rstd[r]);
      for (int64_t j = 0; j < width; ++j) {
        const double d = static_cast<double>(dy[j]);
        acc_gamma[j] += d * (static_cast<double>(x[j]) - mu) * rs;
        acc_beta[j] += d;
      }
    }
    for (int64_t j = 0; j < width; ++j) {
      dgamma[j0 + j] += static_cast<T>(acc_gamma[j]);
      dbeta[j0 + j] += static_cast<T>(acc_beta[j]);
    }
  }
}

// RMSNorm's per-feature gain: 1 + g (kUnitOffset, STARFlow's final_norm, whose parameter is an offset) or w
// (T5). Both forwards multiply the normalised value by the gain, upstream's order.
template <class T, bool kUnitOffset>
inline T rms_gain(const T* g, int64_t j) {
  if constexpr (kUnitOffset) return T(1) + g[j];
  return g[j];
}
template <bool kUnitOffset, class T>
inline double rms_gain_double(const T* g, int64_t j) {
  if constexpr (kUnitOffset) return 1.0 + static_cast<double>(g[j]);
  return static_cast<double>(g[j]);
}

template <class T, bool kUnitOffset>
void rmsnorm_forward_body(T* out, T* rrms, const T* in, const T* g, int64_t rows, int64_t C, T eps) {
#pragma omp parallel for schedule(static) if (rows * C > kNormParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    const T* x = in + r * C;
    rrms[r] = row_rrms(x, C, eps);
    const T rr = rrms[r];
    T* y = out + r * C;
    for (int64_t j = 0; j < C; ++j) y[j] = x[j] * rr * rms_gain<T, kUnitOffset>(g, j);
  }
}

template <class T, bool kUnitOffset>
void rmsnorm_backward_body(T* din, T* dg, const T* dout, const T* in, const T* rrms, const T* g, int64_t rows,
                           int64_t C, bool accumulate_din) {
  const bool parallel = rows * C > kNormParallelElements;
  // With d = dout·gain and ρ = rrms: din = ρ·d − ρ³·x·mean(d·x); the second term is the change of ρ itself
  // with x.
  if (din != nullptr) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t r = 0; r < rows; ++r) {
      const T* x = in + r * C;
      const T* dy = dout + r * C;
      double sum_dx = 0.0;
#pragma omp simd reduction(+ : sum_dx)
      for (int64_t j = 0; j < C; ++j)
        sum_dx += static_cast<double>(dy[j]) * rms_gain_double<kUnitOffset>(g, j) * static_cast<double>(x[j]);
      const double rr = static_cast<double>(rrms[r]);
      const T rr_t = rrms[r];
      const T coef = static_cast<T>(rr * rr * rr * sum_dx / static_cast<double>(C));
      T* dx = din + r * C;
      if (accumulate_din) {
        for (int64_t j = 0; j < C; ++j) dx[j] += rr_t * dy[j] * rms_gain<T, kUnitOffset>(g, j) - coef * x[j];
      } else {
        for (int64_t j = 0; j < C; ++j) dx[j] = rr_t * dy[j] * rms_gain<T, kUnitOffset>(g, j) - coef * x[j];
      }
    }
  }

  // dg += Σ_rows dout·x·ρ (skipped when dg is null: an input-gradient-only pass); the same for either gain.
  if (dg == nullptr) return;
  const int64_t blocks = (C + kNormColumnBlock - 1) / kNormColumnBlock;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kNormColumnBlock;
    const int64_t width = C - j0 < kNormColumnBlock ? C - j0 : kNormColumnBlock;
    double acc[kNormColumnBlock] = {};
    for (int64_t r = 0; r < rows; ++r) {
      const T* x = in + r * C + j0;
      const T* dy = dout + r * C + j0;
      const double rr = static_cast<double>(rrms[r]);
      for (int64_t j = 0; j < width; ++j) acc[j] += static_cast<double>(dy[j]) * static_cast<double>(x[j]) * rr;
    }
    for (int64_t j = 0; j < width; ++j) dg[j0 + j] += static_cast<T>(acc[j]);
  }
}

}  // namespace
}  // namespace starflow::core::cpu
