// RoPE's rotation in the adjacent-pair layout compiled for AVX-512 (rope_impl.h's body; elementwise, so the AVX2 form's values up to how the
// compiler contracts multiply-adds). Reached only through cpu_isa(): nothing here but the entry point has external
// linkage.
#include "core/build_config.h"

#if defined(STARFLOW_AVX512_KERNELS) && defined(__AVX512F__)
#include "core/ops/cpu/rope_impl.h"
#include "core/ops/cpu/small_batch_avx512.h"

namespace starflow::core::cpu::avx512 {

void rope_rotate(float* x, int64_t batch, int64_t rows, int64_t batch_stride, int64_t row_stride, int64_t n_heads,
                 const float* cos, const float* sin, int64_t dh, int64_t row_offset, bool inverse) {
  rope_rotate_body<float, false>(x, batch, rows, batch_stride, row_stride, n_heads, cos, sin, dh, row_offset, inverse);
}

}  // namespace starflow::core::cpu::avx512
#endif
