// The flow head's AVX-512 form: flow_head_lanes.h on 16-lane packets (the baseline form has 8). Eigen's 16-lane
// exp and tanh are their own AVX-512 code, so results agree with the baseline form to float rounding, not bit
// for bit. Compiled for AVX-512 (CMakeLists.txt), reached only through cpu_isa(): nothing here but the entry
// points has external linkage (tests/repo/check_avx512_objects.sh).
#include "core/build_config.h"

#if defined(STARFLOW_AVX512_KERNELS) && defined(__AVX512F__)
// GCC 12 reports the undefined pass-through operand of its own _mm512_min_ps/_mm512_max_ps (used by Eigen's
// packet math) as maybe uninitialized: a known false positive of avx512fintrin.h.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "core/ops/cpu/flow_head_lanes.h"
#include "core/ops/cpu/small_batch_avx512.h"

namespace starflow::core::cpu::avx512 {

void flow_head_forward(float* z, float* logdet, const float* o, const float* v, int64_t rows, int64_t D,
                       const FlowHeadOptions& opt) {
  FlowHeadLanes<16>::forward(z, logdet, o, v, rows, D, opt);
}

void flow_head_sigma_mu(float* sigma, float* mu, const float* o, int64_t rows, int64_t D,
                        const FlowHeadOptions& opt) {
  FlowHeadLanes<16>::sigma_mu(sigma, mu, o, rows, D, opt);
}

void flow_head_backward(float* d_o, float* dv, const float* dz, float dlogdet, const float* o, const float* v,
                        int64_t rows, int64_t D, const FlowHeadOptions& opt) {
  FlowHeadLanes<16>::backward(d_o, dv, dz, dlogdet, o, v, rows, D, opt);
}

}  // namespace starflow::core::cpu::avx512
#endif
