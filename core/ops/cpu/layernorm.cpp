// LayerNorm forward/backward for the CPU backend. Row statistics are accumulated in double even for
// float tensors, so long rows cannot lose the mean to cancellation and float stays close to the reference.
#include "core/ops/cpu/layernorm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/ops/cpu/normalize_transposed.h"

namespace starflow::core::cpu {

namespace {

// Below this many elements a fork/join costs more than the loop it would split.
constexpr int64_t kParallelElements = 32 * 1024;

// dgamma/dbeta are summed over rows by column blocks rather than per-thread partials: no scratch
// buffers, no races, and the summation order per column is the same for any thread count, which keeps
// training bit-reproducible when OMP_NUM_THREADS changes.
constexpr int64_t kColumnBlock = 64;

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

}  // namespace

template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* in, const T* gamma, const T* beta, int64_t rows,
                       int64_t C, T eps) {
#pragma omp parallel for schedule(static) if (rows * C > kParallelElements)
  for (int64_t r = 0; r < rows; ++r) {
    const T* x = in + r * C;
    row_statistics(x, C, eps, mean[r], rstd[r]);
    const T mu_t = mean[r], rs_t = rstd[r];
    T* y = out + r * C;
    for (int64_t j = 0; j < C; ++j) y[j] = (x[j] - mu_t) * rs_t * gamma[j] + beta[j];
  }
}

#ifdef STARFLOW_SMALL_BATCH_KERNEL
void layernorm_transposed_team(float* xt, float* mean, float* rstd, const float* in, const float* gamma,
                               const float* beta, int64_t M, int64_t C, float eps) {
  // Every thread computes every row's statistics (a few µs at decode sizes, against a barrier and the
  // wait for the slower thread when the rows are split), into its own copy padded to Mp rows.
  const int64_t Mp = small_batch_padded_rows(M);
  thread_local std::vector<float> stats;
  stats.assign(2 * Mp, 0.f);
  float *mu = stats.data(), *rs = stats.data() + Mp;
  for (int64_t r = 0; r < M; ++r) row_statistics(in + r * C, C, eps, mu[r], rs[r]);
  if (omp_get_thread_num() == 0) {
    std::copy(mu, mu + M, mean);
    std::copy(rs, rs + M, rstd);
  }
  normalize_transposed_team(xt, in, M, C, mu, rs, gamma, beta, /*unit_offset=*/false);
}
#endif

template <class T>
void layernorm_backward(T* din, T* dgamma, T* dbeta, const T* dout, const T* in, const T* mean, const T* rstd,
                        const T* gamma, int64_t rows, int64_t C, bool accumulate_din) {
  const bool parallel = rows * C > kParallelElements;
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
  const int64_t blocks = (C + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, C - j0);
    double acc_gamma[kColumnBlock] = {};
    double acc_beta[kColumnBlock] = {};
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

template void layernorm_forward<float>(float*, float*, float*, const float*, const float*, const float*, int64_t,
                                       int64_t, float);
template void layernorm_forward<double>(double*, double*, double*, const double*, const double*, const double*,
                                        int64_t, int64_t, double);
template void layernorm_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                        const float*, const float*, int64_t, int64_t, bool);
template void layernorm_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                         const double*, const double*, int64_t, int64_t, bool);

}  // namespace starflow::core::cpu
