// normalize_transposed_team: see the header (its AVX-512 step: normalize_transposed_avx512.cpp). The arithmetic is the scalar forms' ((x − s)·r)·g + b, in
// that order and without contraction, so the values are those of layernorm_forward / rmsnorm_forward.
#include "core/ops/cpu/normalize_transposed.h"

#ifdef STARFLOW_SMALL_BATCH_KERNEL
#include <immintrin.h>

#include <algorithm>

#include "core/ops/cpu/avx2_transpose.h"
#include "core/ops/cpu/cpu_isa.h"
#include "core/ops/cpu/small_batch_avx512.h"

namespace starflow::core::cpu {

namespace {

inline float column_gain(const float* gamma, int64_t j, bool unit_offset) {
  return unit_offset ? 1.f + gamma[j] : gamma[j];
}

}  // namespace

void normalize_transposed_team(float* xt, const float* in, int64_t M, int64_t C, const float* shift,
                               const float* scale, const float* gamma, const float* beta, bool unit_offset) {
  const int64_t Mp = small_batch_padded_rows(M), blocks = (C + 7) / 8;
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const bool wide = use_avx512();
#pragma omp for schedule(static)
  for (int64_t jb = 0; jb < blocks; ++jb) {
    const int64_t j0 = jb * 8;
    if (j0 + 8 > C) {  // a last partial block of features
      for (int64_t j = j0; j < C; ++j) {
        const float g = column_gain(gamma, j, unit_offset), b = beta ? beta[j] : 0.f;
        float* col = xt + j * Mp;
        for (int64_t r = 0; r < M; ++r) {
          const float v = (in[r * C + j] - shift[r]) * scale[r] * g;
          col[r] = beta ? v + b : v;
        }
        for (int64_t r = M; r < Mp; ++r) col[r] = 0.f;
      }
      continue;
    }
    int64_t r0 = 0;
    if (wide) {  // 16 rows at a time (the AVX-512 step), a last 8 below
      float gain[8];
      for (int f = 0; f < 8; ++f) gain[f] = column_gain(gamma, j0 + f, unit_offset);
      for (; r0 + 16 <= Mp; r0 += 16)
        avx512::normalize_rows16(xt, Mp, in, r0, std::max<int64_t>(0, std::min<int64_t>(16, M - r0)), C, j0, shift,
                                 scale, gain, beta ? beta + j0 : nullptr);
    }
    for (; r0 < Mp; r0 += 8) {
      const int64_t valid = std::min<int64_t>(8, M - r0);
      __m256 v[8];
      for (int i = 0; i < 8; ++i) v[i] = i < valid ? _mm256_loadu_ps(in + (r0 + i) * C + j0) : _mm256_setzero_ps();
      transpose8(v);  // v[f]: feature j0 + f of rows r0..r0+7
      const __m256 s = _mm256_loadu_ps(shift + r0), r = _mm256_loadu_ps(scale + r0);
      const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(valid)), lanes));
#pragma GCC unroll 8
      for (int f = 0; f < 8; ++f) {
        __m256 y = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(v[f], s), r),
                                 _mm256_set1_ps(column_gain(gamma, j0 + f, unit_offset)));
        if (beta) y = _mm256_add_ps(y, _mm256_set1_ps(beta[j0 + f]));
        _mm256_storeu_ps(xt + (j0 + f) * Mp + r0, _mm256_and_ps(y, keep));
      }
    }
  }
}

}  // namespace starflow::core::cpu
#endif
