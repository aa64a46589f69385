// T5's RMSNorm forward/backward on the CPU: norms_impl.h's RMSNorm with a plain gain, at the host's width (the
// AVX-512 form: norms_avx512.cpp). Upstream computes the mean square in float32 even for half-precision inputs;
// here it is accumulated in double, which is within the fixtures' tolerance of either.
#include "core/ops/cpu/rmsnorm_gain.h"

#include <type_traits>

#include "core/build_config.h"
#include "core/ops/cpu/cpu_isa.h"
#include "core/ops/cpu/norms_impl.h"
#include "core/ops/cpu/small_batch_avx512.h"

namespace starflow::core::cpu {

template <class T>
void rmsnorm_gain_forward(T* out, T* rrms, const T* in, const T* w, int64_t rows, int64_t C, T eps) {
#ifdef STARFLOW_AVX512_KERNELS
  if constexpr (std::is_same_v<T, float>)
    if (use_avx512()) return avx512::rmsnorm_forward(out, rrms, in, w, rows, C, eps, /*unit_offset=*/false);
#endif
  rmsnorm_forward_body<T, false>(out, rrms, in, w, rows, C, eps);
}

template <class T>
void rmsnorm_gain_backward(T* din, T* dw, const T* dout, const T* in, const T* rrms, const T* w, int64_t rows,
                           int64_t C, bool accumulate_din) {
#ifdef STARFLOW_AVX512_KERNELS
  if constexpr (std::is_same_v<T, float>)
    if (use_avx512())
      return avx512::rmsnorm_backward(din, dw, dout, in, rrms, w, rows, C, accumulate_din, /*unit_offset=*/false);
#endif
  rmsnorm_backward_body<T, false>(din, dw, dout, in, rrms, w, rows, C, accumulate_din);
}

template void rmsnorm_gain_forward<float>(float*, float*, const float*, const float*, int64_t, int64_t, float);
template void rmsnorm_gain_forward<double>(double*, double*, const double*, const double*, int64_t, int64_t, double);
template void rmsnorm_gain_backward<float>(float*, float*, const float*, const float*, const float*, const float*,
                                           int64_t, int64_t, bool);
template void rmsnorm_gain_backward<double>(double*, double*, const double*, const double*, const double*,
                                            const double*, int64_t, int64_t, bool);

}  // namespace starflow::core::cpu
