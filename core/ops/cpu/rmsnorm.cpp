// RMSNorm with unit offset (STARFlow's final_norm) forward/backward for the CPU backend: the bodies are
// norms_impl.h's, at the host's width (the AVX-512 form: norms_avx512.cpp). The mean square is accumulated in
// double even for float tensors, matching the spec's "computed in fp32" intent with margin.
#include "core/ops/cpu/rmsnorm.h"

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
void rmsnorm_forward(T* out, T* rrms, const T* in, const T* g, int64_t rows, int64_t C, T eps) {
#ifdef STARFLOW_AVX512_KERNELS
  if constexpr (std::is_same_v<T, float>)
    if (use_avx512()) return avx512::rmsnorm_forward(out, rrms, in, g, rows, C, eps, /*unit_offset=*/true);
#endif
  rmsnorm_forward_body<T, true>(out, rrms, in, g, rows, C, eps);
}

#ifdef STARFLOW_SMALL_BATCH_KERNEL
void rmsnorm_transposed_team(float* xt, float* rrms, const float* in, const float* g, int64_t M, int64_t C,
                             float eps) {
  // As layernorm_transposed_team: every thread computes every row's statistic, no barrier in between.
  const int64_t Mp = small_batch_padded_rows(M);
  thread_local std::vector<float> stats;
  stats.assign(2 * Mp, 0.f);
  float *zero = stats.data(), *rr = stats.data() + Mp;
#ifdef STARFLOW_AVX512_KERNELS
  if (use_avx512()) {
    avx512::rms_statistics(rr, in, M, C, eps);
  } else
#endif
  {
    for (int64_t r = 0; r < M; ++r) rr[r] = row_rrms(in + r * C, C, eps);
  }
  if (omp_get_thread_num() == 0) std::copy(rr, rr + M, rrms);
  normalize_transposed_team(xt, in, M, C, zero, rr, g, nullptr, /*unit_offset=*/true);
}
#endif

template <class T>
void rmsnorm_backward(T* din, T* dg, const T* dout, const T* in, const T* rrms, const T* g, int64_t rows,
                      int64_t C, bool accumulate_din) {
#ifdef STARFLOW_AVX512_KERNELS
  if constexpr (std::is_same_v<T, float>)
    if (use_avx512())
      return avx512::rmsnorm_backward(din, dg, dout, in, rrms, g, rows, C, accumulate_din, /*unit_offset=*/true);
#endif
  rmsnorm_backward_body<T, true>(din, dg, dout, in, rrms, g, rows, C, accumulate_din);
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int64_t, int64_t, float);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int64_t, int64_t, double);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*, const float*,
                                      int64_t, int64_t, bool);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*, const double*,
                                       const double*, int64_t, int64_t, bool);

}  // namespace starflow::core::cpu
