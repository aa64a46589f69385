// LayerNorm forward/backward for the CPU backend: the bodies are norms_impl.h's, at the host's width (the
// AVX-512 form: norms_avx512.cpp).
#include "core/ops/cpu/layernorm.h"

#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "core/ops/cpu/cpu_isa.h"
#include "core/ops/cpu/norms_impl.h"
#include "core/ops/cpu/normalize_transposed.h"
#include "core/ops/cpu/small_batch_avx512.h"

namespace starflow::core::cpu {

template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* in, const T* gamma, const T* beta, int64_t rows,
                       int64_t C, T eps) {
#ifdef STARFLOW_AVX512_KERNELS
  if constexpr (std::is_same_v<T, float>)
    if (use_avx512()) return avx512::layernorm_forward(out, mean, rstd, in, gamma, beta, rows, C, eps);
#endif
  layernorm_forward_body(out, mean, rstd, in, gamma, beta, rows, C, eps);
}

#ifdef STARFLOW_SMALL_BATCH_KERNEL
void layernorm_transposed_team(float* xt, float* mean, float* rstd, const float* in, const float* gamma,
                               const float* beta, int64_t M, int64_t C, float eps) {
  // Every thread computes every row's statistics (a few µs at decode sizes, against a barrier and the
  // wait for the slower thread when the rows are split), into its own copy padded to Mp rows, with
  // layernorm_forward's code for the kernel set in use (the same statistics).
  const int64_t Mp = small_batch_padded_rows(M);
  thread_local std::vector<float> stats;
  stats.assign(2 * Mp, 0.f);
  float *mu = stats.data(), *rs = stats.data() + Mp;
#ifdef STARFLOW_AVX512_KERNELS
  if (use_avx512()) {
    avx512::layernorm_statistics(mu, rs, in, M, C, eps);
  } else
#endif
  {
    for (int64_t r = 0; r < M; ++r) row_statistics(in + r * C, C, eps, mu[r], rs[r]);
  }
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
#ifdef STARFLOW_AVX512_KERNELS
  if constexpr (std::is_same_v<T, float>)
    if (use_avx512())
      return avx512::layernorm_backward(din, dgamma, dbeta, dout, in, mean, rstd, gamma, rows, C, accumulate_din);
#endif
  layernorm_backward_body(din, dgamma, dbeta, dout, in, mean, rstd, gamma, rows, C, accumulate_din);
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
