// GroupNorm forward/backward for the CPU backend. In NCHW the channels of one group are adjacent, so
// each (image, group) is one contiguous run of (C/groups)·HW values. Statistics are accumulated in
// double (two-pass variance), as in layernorm.cpp.
#include "core/ops/cpu/group_norm.h"

#include <cmath>

namespace starflow::core::cpu {

namespace {

constexpr int64_t kParallelElements = 32 * 1024;

}  // namespace

template <class T>
void group_norm_forward(T* out, T* mean, T* rstd, const T* in, const T* gamma, const T* beta, int64_t B, int64_t C,
                        int64_t HW, int64_t groups, T eps) {
  const int64_t cpg = C / groups, n = cpg * HW;
#pragma omp parallel for schedule(static) if (B * C * HW > kParallelElements)
  for (int64_t bg = 0; bg < B * groups; ++bg) {
    const T* x = in + bg * n;
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]);
    const double mu = sum / static_cast<double>(n);
    double sq = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = static_cast<double>(x[i]) - mu;
      sq += d * d;
    }
    const double rs = 1.0 / std::sqrt(sq / static_cast<double>(n) + static_cast<double>(eps));
    mean[bg] = static_cast<T>(mu);
    rstd[bg] = static_cast<T>(rs);
    const T mu_t = static_cast<T>(mu), rs_t = static_cast<T>(rs);
    const int64_t c0 = (bg % groups) * cpg;
    T* y = out + bg * n;
    for (int64_t c = 0; c < cpg; ++c) {
      // Folded into one multiply-add per element: y = x·a + b with a = rstd·γ, b = β − mean·a.
      const T a = rs_t * gamma[c0 + c], shift = beta[c0 + c] - mu_t * a;
      for (int64_t p = 0; p < HW; ++p) y[c * HW + p] = x[c * HW + p] * a + shift;
    }
  }
}

template <class T>
void group_norm_backward(T* din, T* dgamma, T* dbeta, const T* dout, const T* in, const T* mean, const T* rstd,
                         const T* gamma, int64_t B, int64_t C, int64_t HW, int64_t groups, bool accumulate_din) {
  const int64_t cpg = C / groups, n = cpg * HW;
  const bool parallel = B * C * HW > kParallelElements;
  // din = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dout·γ, per (image, group): the same projection
  // as LayerNorm's, over the group's values instead of a row.
  if (din != nullptr) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t bg = 0; bg < B * groups; ++bg) {
      const T* x = in + bg * n;
      const T* dy = dout + bg * n;
      const int64_t c0 = (bg % groups) * cpg;
      const double mu = static_cast<double>(mean[bg]), rs = static_cast<double>(rstd[bg]);
      double sum_g = 0.0, sum_gx = 0.0;
      for (int64_t c = 0; c < cpg; ++c) {
        const double gc = static_cast<double>(gamma[c0 + c]);
        for (int64_t p = 0; p < HW; ++p) {
          const double g = static_cast<double>(dy[c * HW + p]) * gc;
          sum_g += g;
          sum_gx += g * (static_cast<double>(x[c * HW + p]) - mu) * rs;
        }
      }
      const T mean_g = static_cast<T>(sum_g / static_cast<double>(n));
      const T mean_gx = static_cast<T>(sum_gx / static_cast<double>(n));
      const T mu_t = mean[bg], rs_t = rstd[bg];
      T* dx = din + bg * n;
      for (int64_t c = 0; c < cpg; ++c) {
        const T gc = gamma[c0 + c];
        for (int64_t p = 0; p < HW; ++p) {
          const int64_t i = c * HW + p;
          const T v = rs_t * (dy[i] * gc - mean_g - (x[i] - mu_t) * rs_t * mean_gx);
          dx[i] = accumulate_din ? dx[i] + v : v;
        }
      }
    }
  }
  if (dgamma == nullptr || dbeta == nullptr) return;
  // dγ[c] += Σ_{b,p} dout·x̂, dβ[c] += Σ_{b,p} dout: one channel per iteration, a fixed order per channel.
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t c = 0; c < C; ++c) {
    double acc_gamma = 0.0, acc_beta = 0.0;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t bg = b * groups + c / cpg;
      const double mu = static_cast<double>(mean[bg]), rs = static_cast<double>(rstd[bg]);
      const T* x = in + (b * C + c) * HW;
      const T* dy = dout + (b * C + c) * HW;
      for (int64_t p = 0; p < HW; ++p) {
        const double d = static_cast<double>(dy[p]);
        acc_gamma += d * (static_cast<double>(x[p]) - mu) * rs;
        acc_beta += d;
      }
    }
    dgamma[c] += static_cast<T>(acc_gamma);
    dbeta[c] += static_cast<T>(acc_beta);
  }
}

template void group_norm_forward<float>(float*, float*, float*, const float*, const float*, const float*, int64_t,
                                        int64_t, int64_t, int64_t, float);
template void group_norm_forward<double>(double*, double*, double*, const double*, const double*, const double*,
                                         int64_t, int64_t, int64_t, int64_t, double);
template void group_norm_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                         const float*, const float*, int64_t, int64_t, int64_t, int64_t, bool);
template void group_norm_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                          const double*, const double*, int64_t, int64_t, int64_t, int64_t, bool);

}  // namespace starflow::core::cpu
