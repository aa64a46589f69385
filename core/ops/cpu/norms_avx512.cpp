// The training norms' AVX-512 form: norms_impl.h's bodies compiled for AVX-512 (their double sums in 8-lane
// vectors instead of 4), for float. Compiled with AVX-512 flags (CMakeLists.txt), reached only through
// cpu_isa(): nothing here but the entry points has external linkage.
#include "core/build_config.h"

#if defined(STARFLOW_AVX512_KERNELS) && defined(__AVX512F__)
#include "core/ops/cpu/norms_impl.h"
#include "core/ops/cpu/small_batch_avx512.h"

namespace starflow::core::cpu::avx512 {

void layernorm_forward(float* out, float* mean, float* rstd, const float* in, const float* gamma, const float* beta,
                       int64_t rows, int64_t C, float eps) {
  layernorm_forward_body(out, mean, rstd, in, gamma, beta, rows, C, eps);
}

void layernorm_backward(float* din, float* dgamma, float* dbeta, const float* dout, const float* in,
                        const float* mean, const float* rstd, const float* gamma, int64_t rows, int64_t C,
                        bool accumulate_din) {
  layernorm_backward_body(din, dgamma, dbeta, dout, in, mean, rstd, gamma, rows, C, accumulate_din);
}

void layernorm_statistics(float* mean, float* rstd, const float* in, int64_t rows, int64_t C, float eps) {
  for (int64_t r = 0; r < rows; ++r) row_statistics(in + r * C, C, eps, mean[r], rstd[r]);
}

void rmsnorm_forward(float* out, float* rrms, const float* in, const float* g, int64_t rows, int64_t C, float eps,
                     bool unit_offset) {
  if (unit_offset) return rmsnorm_forward_body<float, true>(out, rrms, in, g, rows, C, eps);
  rmsnorm_forward_body<float, false>(out, rrms, in, g, rows, C, eps);
}

void rmsnorm_backward(float* din, float* dg, const float* dout, const float* in, const float* rrms, const float* g,
                      int64_t rows, int64_t C, bool accumulate_din, bool unit_offset) {
  if (unit_offset) return rmsnorm_backward_body<float, true>(din, dg, dout, in, rrms, g, rows, C, accumulate_din);
  rmsnorm_backward_body<float, false>(din, dg, dout, in, rrms, g, rows, C, accumulate_din);
}

void rms_statistics(float* rrms, const float* in, int64_t rows, int64_t C, float eps) {
  for (int64_t r = 0; r < rows; ++r) rrms[r] = row_rrms(in + r * C, C, eps);
}

}  // namespace starflow::core::cpu::avx512
#endif
