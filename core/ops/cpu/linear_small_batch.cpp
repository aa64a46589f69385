// The small-batch linear kernel (AVX2/FMA). Blocks of 4 input rows × 2 weight rows keep 8 accumulators of
// 8 floats in registers; the 8 dot products of a block are finished with one horizontal-add tree that
// yields all 8 sums in a single vector. Each pair of weight rows is loaded once and reused by every input
// row block while it sits in L1, so the weights stream from memory once per call. Without AVX2 (PORTABLE
// builds) BLAS is used.
#include "core/ops/cpu/linear_small_batch.h"

#include <algorithm>

#include "core/ops/cpu/gemm.h"


#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define STARFLOW_SMALL_BATCH_AVX2 1
#endif

namespace starflow::core::cpu {

#ifdef STARFLOW_SMALL_BATCH_AVX2
namespace {

// acc[i][j] = Σ_k a_i[k]·w_j[k] for 4 input rows and 2 weight rows, K a multiple of 8.
inline __m256 dot_4x2(const float* a, const float* w, int64_t K) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int64_t k = 0; k < K; k += 8) {
    const __m256 w0 = _mm256_loadu_ps(w + k), w1 = _mm256_loadu_ps(w + K + k);
    __m256 x = _mm256_loadu_ps(a + k);
    c00 = _mm256_fmadd_ps(x, w0, c00);
    c01 = _mm256_fmadd_ps(x, w1, c01);
    x = _mm256_loadu_ps(a + K + k);
    c10 = _mm256_fmadd_ps(x, w0, c10);
    c11 = _mm256_fmadd_ps(x, w1, c11);
    x = _mm256_loadu_ps(a + 2 * K + k);
    c20 = _mm256_fmadd_ps(x, w0, c20);
    c21 = _mm256_fmadd_ps(x, w1, c21);
    x = _mm256_loadu_ps(a + 3 * K + k);
    c30 = _mm256_fmadd_ps(x, w0, c30);
    c31 = _mm256_fmadd_ps(x, w1, c31);
  }
  // Horizontal-add tree: lanes end up as [c00 c01 c10 c11 c20 c21 c30 c31] totals.
  const __m256 h0 = _mm256_hadd_ps(c00, c01), h1 = _mm256_hadd_ps(c10, c11);
  const __m256 h2 = _mm256_hadd_ps(c20, c21), h3 = _mm256_hadd_ps(c30, c31);
  const __m256 g0 = _mm256_hadd_ps(h0, h1), g1 = _mm256_hadd_ps(h2, h3);
  // g0 = [c00 c01 c10 c11 | c00 c01 c10 c11] partial (low/high 128-bit halves); same for g1.
  const __m256 lo = _mm256_permute2f128_ps(g0, g1, 0x20), hi = _mm256_permute2f128_ps(g0, g1, 0x31);
  return _mm256_add_ps(lo, hi);
}

// One input row against 2 weight rows (the M mod 4 remainder).
inline void dot_1x2(float* out, const float* a, const float* w, int64_t K, float b0, float b1) {
  __m256 c0 = _mm256_setzero_ps(), c1 = c0;
  for (int64_t k = 0; k < K; k += 8) {
    const __m256 x = _mm256_loadu_ps(a + k);
    c0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(w + k), c0);
    c1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(w + K + k), c1);
  }
  alignas(32) float s0[8], s1[8];
  _mm256_store_ps(s0, c0);
  _mm256_store_ps(s1, c1);
  float t0 = 0, t1 = 0;
  for (int i = 0; i < 8; ++i) t0 += s0[i], t1 += s1[i];
  out[0] = t0 + b0;
  out[1] = t1 + b1;
}

void weight_pair(float* out, const float* in, const float* w, const float* bias, int64_t M, int64_t K, int64_t N) {
  const float b0 = bias ? bias[0] : 0.f, b1 = bias ? bias[1] : 0.f;
  alignas(32) float r[8];
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) {
    _mm256_store_ps(r, dot_4x2(in + m * K, w, K));
    for (int i = 0; i < 4; ++i) {
      out[(m + i) * N] = r[2 * i] + b0;
      out[(m + i) * N + 1] = r[2 * i + 1] + b1;
    }
  }
  for (; m < M; ++m) dot_1x2(out + m * N, in + m * K, w, K, b0, b1);
}

}  // namespace
#endif

void linear_forward_small_batch(float* out, const float* in, const float* weight, const float* bias, int64_t M,
                                int64_t K, int64_t N) {
#ifdef STARFLOW_SMALL_BATCH_AVX2
  if (K % 8 == 0 && N % 2 == 0) {
    const int64_t pairs = N / 2;
    // A second thread pays for its fork/join above ~100k multiply-adds.
#pragma omp parallel for schedule(static) if (M * N * K > (1 << 17))
    for (int64_t p = 0; p < pairs; ++p)
      weight_pair(out + 2 * p, in, weight + 2 * p * K, bias ? bias + 2 * p : nullptr, M, K, N);
    return;
  }
#endif
  // Shapes the kernel does not cover: proj_in (K = D, e.g. 4 inputs), odd widths, or no AVX2. Tiny ones
  // take a plain loop (cheaper than a BLAS call's setup), the rest BLAS.
  if (M * N * K <= (1 << 16)) {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        const float* a = in + m * K;
        const float* w = weight + n * K;
        float s = bias ? bias[n] : 0.f;
        for (int64_t k = 0; k < K; ++k) s += a[k] * w[k];
        out[m * N + n] = s;
      }
    return;
  }
  if (bias != nullptr)
    for (int64_t i = 0; i < M; ++i) std::copy(bias, bias + N, out + i * N);
  gemm<float>(false, true, M, N, K, 1.f, in, K, weight, K, bias != nullptr ? 1.f : 0.f, out, N);
}

}  // namespace starflow::core::cpu
