// normalize_transposed_team's AVX-512 step (normalize_transposed.cpp holds the scheme): 16 rows of one block of
// 8 features as two 8 × 8 register transposes joined into 16-lane vectors, then the normalisation and one
// 16-float store per feature. Compiled for AVX-512 (CMakeLists.txt), reached only through cpu_isa().
#include "core/build_config.h"

#if defined(STARFLOW_AVX512_KERNELS) && defined(__AVX512F__)
#include <immintrin.h>

#include <cstdint>

#include "core/ops/cpu/avx2_transpose.h"
#include "core/ops/cpu/small_batch_avx512.h"

namespace starflow::core::cpu::avx512 {

void normalize_rows16(float* xt, int64_t Mp, const float* in, int64_t r0, int64_t valid, int64_t C, int64_t j0,
                      const float* shift, const float* scale, const float* gain, const float* beta) {
  __m256 lo[8], hi[8];
  for (int i = 0; i < 8; ++i) {
    lo[i] = i < valid ? _mm256_loadu_ps(in + (r0 + i) * C + j0) : _mm256_setzero_ps();
    hi[i] = 8 + i < valid ? _mm256_loadu_ps(in + (r0 + 8 + i) * C + j0) : _mm256_setzero_ps();
  }
  transpose8(lo);  // lo[f], hi[f]: feature j0 + f of rows r0..r0+7, r0+8..r0+15
  transpose8(hi);
  const __m512 s = _mm512_loadu_ps(shift + r0), r = _mm512_loadu_ps(scale + r0);
  const __mmask16 keep = valid >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1u);
#pragma GCC unroll 8
  for (int f = 0; f < 8; ++f) {
    const __m512 v = _mm512_insertf32x8(_mm512_castps256_ps512(lo[f]), hi[f], 1);
    __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(v, s), r), _mm512_set1_ps(gain[f]));
    if (beta != nullptr) y = _mm512_add_ps(y, _mm512_set1_ps(beta[f]));
    _mm512_storeu_ps(xt + (j0 + f) * Mp + r0, _mm512_maskz_mov_ps(keep, y));
  }
}

}  // namespace starflow::core::cpu::avx512
#endif
