// The decode step's one-query attention in AVX-512 (the AVX2 form is attend_avx2 in attention_cached.cpp):
// eight keys at a time, each score a dot product over the key row in 16-lane vectors, then the weighted sum
// of value rows with the head's 64 dimensions in four registers per chunk. The sums are grouped differently
// from the AVX2 form's (16 lanes, not 8): same values to rounding, not the same bits. Compiled for AVX-512
// (CMakeLists.txt), reached only through cpu_isa(); internal linkage but the entry point.
#include "core/build_config.h"

#if defined(STARFLOW_AVX512_KERNELS) && defined(__AVX512F__)
// GCC 12 reports the undefined pass-through operand inside its own _mm512_extractf32x8_ps as maybe
// uninitialized: a known false positive of its AVX-512 headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "core/ops/cpu/small_batch_avx512.h"
#include "core/ops/cpu/vector_math.h"

namespace starflow::core::cpu::avx512 {
namespace {

// Lanes 0..3 hold the totals of a, b, c and d: each 16-lane vector halved to 8 lanes, then AVX2's pairwise
// adds.
inline __m128 sum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  auto fold = [](__m512 v) { return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)); };
  const __m256 ab = _mm256_hadd_ps(fold(a), fold(b)), cd = _mm256_hadd_ps(fold(c), fold(d));
  const __m256 abcd = _mm256_hadd_ps(ab, cd);
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

}  // namespace

void attend(float* o, int64_t stride, const float* q, const float* K, const float* V, int64_t keys, int64_t dh,
            float scale, float* p, float* qs) {
  for (int64_t d = 0; d < dh; d += 16) _mm512_storeu_ps(qs + d, _mm512_mul_ps(_mm512_loadu_ps(q + d), _mm512_set1_ps(scale)));
  int64_t j = 0;
  // Eight keys at a time: eight independent FMA chains cover the FMA latency.
  for (; j + 8 <= keys; j += 8) {
    __m512 a[8];
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) a[c] = _mm512_setzero_ps();
    const float* k0 = K + j * dh;
    for (int64_t d = 0; d < dh; d += 16) {
      const __m512 qv = _mm512_loadu_ps(qs + d);
#pragma GCC unroll 8
      for (int c = 0; c < 8; ++c) a[c] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + c * dh + d), a[c]);
    }
    _mm_storeu_ps(p + j, sum4(a[0], a[1], a[2], a[3]));
    _mm_storeu_ps(p + j + 4, sum4(a[4], a[5], a[6], a[7]));
  }
  for (; j < keys; ++j) {
    __m512 a = _mm512_setzero_ps();
    for (int64_t d = 0; d < dh; d += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(qs + d), _mm512_loadu_ps(K + j * dh + d), a);
    p[j] = _mm_cvtss_f32(sum4(a, a, a, a));
  }
  float mx = p[0];
  for (int64_t i = 1; i < keys; ++i) mx = p[i] > mx ? p[i] : mx;
  const float inv = 1.f / exp_shifted_sum(p, keys, 1.f, mx);
  for (int64_t d0 = 0; d0 < dh; d0 += 64) {
    const int nv = static_cast<int>((dh - d0) / 16 < 4 ? (dh - d0) / 16 : 4);
    __m512 acc[4];
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) acc[c] = _mm512_setzero_ps();
    const float* vj = V + d0;
    if (nv == 4) {
      for (int64_t i = 0; i < keys; ++i, vj += dh) {
        const __m512 w = _mm512_set1_ps(p[i] * inv);
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) acc[c] = _mm512_fmadd_ps(w, _mm512_loadu_ps(vj + 16 * c), acc[c]);
      }
    } else {
      for (int64_t i = 0; i < keys; ++i, vj += dh) {
        const __m512 w = _mm512_set1_ps(p[i] * inv);
        for (int c = 0; c < nv; ++c) acc[c] = _mm512_fmadd_ps(w, _mm512_loadu_ps(vj + 16 * c), acc[c]);
      }
    }
    alignas(64) float buf[64];
    for (int c = 0; c < nv; ++c) _mm512_store_ps(buf + 16 * c, acc[c]);
    for (int64_t d = 0; d < 16 * nv; ++d) o[(d0 + d) * stride] = buf[d];
  }
}

}  // namespace starflow::core::cpu::avx512
#endif
