// The small-batch linear kernel in AVX-512 (see linear_small_batch.cpp for the scheme): outᵀ = W · xt with a
// register tile of 12 weight rows (two of the tile layout's 6-row tiles, read as two streams) × 16 or 32 input
// rows (one or two 16-lane vectors), a last 8-row panel in 8-lane vectors. Each output element is one
// accumulator lane summed in k order, in blocks of 128 terms whose totals are added in order: the AVX2 kernel's
// sums, so its bits. Compiled for AVX-512 (CMakeLists.txt) and reached only through cpu_isa(): everything here
// has internal linkage but the entry point (no shared inline code compiled for AVX-512).
#include "core/build_config.h"

#if defined(STARFLOW_AVX512_KERNELS) && defined(__AVX512F__)
// GCC 12 reports the undefined pass-through operand inside its own _mm512_extractf32x8_ps as maybe
// uninitialized: a known false positive of its AVX-512 headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "core/ops/cpu/avx2_transpose.h"
#include "core/ops/cpu/small_batch_avx512.h"

namespace starflow::core::cpu::avx512 {
namespace {

// Both must equal the AVX2 kernel's: the k block decides the bits, the tile the weight layout.
constexpr int64_t kSumBlock = 128;
constexpr int kTileRows = 6;
// Software prefetch distance along the weight streams, as in the AVX2 kernel (floats of k per tile row).
constexpr int64_t kPrefetch = 256;

constexpr int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

struct Zmm {
  using V = __m512;
  static constexpr int kLanes = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  template <int h>
  static __m256 half(V v) {
    return _mm512_extractf32x8_ps(v, h);
  }
};

struct Ymm {
  using V = __m256;
  static constexpr int kLanes = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  template <int h>
  static __m256 half(V v) {
    return v;
  }
};

// Weight rows n0..n0+NA+NB: in tile layout the first NA rows are one tile (W[n0 + i, k] at a[k·NA + i]), the
// next NB the following tile (b[k·NB + i − NA]); in row layout row i is at rows[i][k].
template <int NA, int NB, bool Tiles>
struct WeightRows {
  static constexpr int NR = NA + NB;
  const float* a;
  const float* b;
  const float* rows[NR];
  WeightRows(const float* w, int64_t K, int64_t n0) : a(w + n0 * K), b(w + (n0 + NA) * K) {
#pragma GCC unroll 12
    for (int i = 0; i < NR; ++i) rows[i] = w + (n0 + i) * K;
  }
  const float* at(int i, int64_t k) const {
    if constexpr (Tiles) return i < NA ? a + k * NA + i : b + k * NB + (i - NA);
    return rows[i] + k;
  }
  // Starts the fetch of the weights kPrefetch k's ahead of k0 (16 k's of each stream).
  void prefetch(int64_t k0, int64_t K) const {
    if constexpr (Tiles) {
      const float* pa = a + (k0 + kPrefetch) * NA;
#pragma GCC unroll 6
      for (int i = 0; i < NA; ++i) _mm_prefetch(reinterpret_cast<const char*>(pa + 16 * i), _MM_HINT_T0);
      if constexpr (NB > 0) {
        const float* pb = b + (k0 + kPrefetch) * NB;
#pragma GCC unroll 6
        for (int i = 0; i < NB; ++i) _mm_prefetch(reinterpret_cast<const char*>(pb + 16 * i), _MM_HINT_T0);
      }
    } else {
      // Along each row, into the next unit's rows near the end.
      const int64_t ahead = k0 + kPrefetch < K ? k0 + kPrefetch : NR * K + k0 + kPrefetch - K;
#pragma GCC unroll 12
      for (int i = 0; i < NR; ++i) _mm_prefetch(reinterpret_cast<const char*>(rows[i] + ahead), _MM_HINT_T0);
    }
  }
};

// Row-major output of an 8-row half of one vector of rows: an 8 × 8 transpose per group of 8 weight rows, so
// row m's outputs leave in one masked store of exactly the unit's columns (neighbouring columns may belong
// to another thread).
template <class Vec, int NR, int h>
void store_rows(const SmallBatchOutput& o, const typename Vec::V (&total)[NR], int64_t m_first, int64_t M,
                const float* bias, int64_t N, int64_t n0) {
  const int64_t rows = min64(8, M - m_first);
  if (rows <= 0) return;
#pragma GCC unroll 2
  for (int g = 0; g < (NR + 7) / 8; ++g) {
    const int count = NR - 8 * g < 8 ? NR - 8 * g : 8;
    const __mmask8 mask = static_cast<__mmask8>((1u << count) - 1u);
    __m256 r[8];
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) r[c] = 8 * g + c < NR ? Vec::template half<h>(total[8 * g + c < NR ? 8 * g + c : 0]) : _mm256_setzero_ps();
    transpose8(r);
    const __m256 b = bias != nullptr ? _mm256_maskz_loadu_ps(mask, bias + n0 + 8 * g) : _mm256_setzero_ps();
    for (int64_t l = 0; l < rows; ++l) {
      const int64_t m = m_first + l;
      __m256 v = _mm256_add_ps(r[l], b);
      if (o.residual != nullptr) v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(mask, o.residual + m * N + n0 + 8 * g));
      _mm256_mask_storeu_ps(o.out + m * N + n0 + 8 * g, mask, v);
    }
  }
}

// One panel: rows m0..m0 + MV·lanes of xt against the unit's weight rows.
template <class Vec, int MV, int NA, int NB, bool Tiles>
void panel(const SmallBatchOutput& o, const float* xt, int64_t Mp, int64_t m0, int64_t M,
           const WeightRows<NA, NB, Tiles>& w, const float* bias, int64_t K, int64_t N, int64_t n0) {
  using V = typename Vec::V;
  constexpr int NR = NA + NB, L = Vec::kLanes;
  const bool first_panel = m0 == 0;  // later panels find the unit's weights in L1
  V acc[NR][MV], total[MV][NR];
#pragma GCC unroll 12
  for (int i = 0; i < NR; ++i)
#pragma GCC unroll 2
    for (int j = 0; j < MV; ++j) total[j][i] = Vec::zero();
  for (int64_t kb = 0; kb < K; kb += kSumBlock) {
#pragma GCC unroll 12
    for (int i = 0; i < NR; ++i)
#pragma GCC unroll 2
      for (int j = 0; j < MV; ++j) acc[i][j] = Vec::zero();
    const int64_t k_end = min64(K, kb + kSumBlock);
    const float* x = xt + kb * Mp + m0;
    for (int64_t k0 = kb; k0 < k_end; k0 += 16) {
      if (first_panel) w.prefetch(k0, K);
      const int64_t k1 = min64(k_end, k0 + 16);
#pragma GCC unroll 4
      for (int64_t k = k0; k < k1; ++k, x += Mp) {
        V xv[MV];
#pragma GCC unroll 2
        for (int j = 0; j < MV; ++j) xv[j] = Vec::load(x + L * j);
#pragma GCC unroll 12
        for (int i = 0; i < NR; ++i) {
          const V b = Vec::set1(*w.at(i, k));
#pragma GCC unroll 2
          for (int j = 0; j < MV; ++j) acc[i][j] = Vec::fma(b, xv[j], acc[i][j]);
        }
      }
    }
#pragma GCC unroll 12
    for (int i = 0; i < NR; ++i)
#pragma GCC unroll 2
      for (int j = 0; j < MV; ++j) total[j][i] = Vec::add(total[j][i], acc[i][j]);
  }
  if (o.out_t != nullptr) {  // transposed: whole vectors, padding columns included
#pragma GCC unroll 12
    for (int i = 0; i < NR; ++i) {
      const V b = Vec::set1(bias != nullptr ? bias[n0 + i] : 0.f);
#pragma GCC unroll 2
      for (int j = 0; j < MV; ++j) Vec::store(o.out_t + (n0 + i) * Mp + m0 + L * j, Vec::add(total[j][i], b));
    }
    return;
  }
#pragma GCC unroll 2
  for (int j = 0; j < MV; ++j) {
    store_rows<Vec, NR, 0>(o, total[j], m0 + L * j, M, bias, N, n0);
    if constexpr (L == 16) store_rows<Vec, NR, 1>(o, total[j], m0 + L * j + 8, M, bias, N, n0);
  }
}

template <int NA, int NB, bool Tiles>
void unit(const SmallBatchOutput& o, const float* xt, int64_t M, int64_t Mp, const float* weight, const float* bias,
          int64_t K, int64_t N, int64_t n0) {
  const WeightRows<NA, NB, Tiles> w(weight, K, n0);
  int64_t m0 = 0;
  for (; m0 + 32 <= Mp; m0 += 32) panel<Zmm, 2>(o, xt, Mp, m0, M, w, bias, K, N, n0);
  if (m0 + 16 <= Mp) panel<Zmm, 1>(o, xt, Mp, m0, M, w, bias, K, N, n0), m0 += 16;
  if (m0 < Mp) panel<Ymm, 1>(o, xt, Mp, m0, M, w, bias, K, N, n0);  // Mp is a multiple of 8
}

template <bool Tiles>
void any_unit(int64_t nr, const SmallBatchOutput& o, const float* xt, int64_t M, int64_t Mp, const float* w,
              const float* bias, int64_t K, int64_t N, int64_t n0) {
  switch (nr) {  // a unit is a whole tile and a second one that may be short, or a short last tile
    case 1: return unit<1, 0, Tiles>(o, xt, M, Mp, w, bias, K, N, n0);
    case 2: return unit<2, 0, Tiles>(o, xt, M, Mp, w, bias, K, N, n0);
    case 3: return unit<3, 0, Tiles>(o, xt, M, Mp, w, bias, K, N, n0);
    case 4: return unit<4, 0, Tiles>(o, xt, M, Mp, w, bias, K, N, n0);
    case 5: return unit<5, 0, Tiles>(o, xt, M, Mp, w, bias, K, N, n0);
    case 6: return unit<6, 0, Tiles>(o, xt, M, Mp, w, bias, K, N, n0);
    case 7: return unit<6, 1, Tiles>(o, xt, M, Mp, w, bias, K, N, n0);
    case 8: return unit<6, 2, Tiles>(o, xt, M, Mp, w, bias, K, N, n0);
    case 9: return unit<6, 3, Tiles>(o, xt, M, Mp, w, bias, K, N, n0);
    case 10: return unit<6, 4, Tiles>(o, xt, M, Mp, w, bias, K, N, n0);
    case 11: return unit<6, 5, Tiles>(o, xt, M, Mp, w, bias, K, N, n0);
    default: return unit<6, 6, Tiles>(o, xt, M, Mp, w, bias, K, N, n0);
  }
}

static_assert(kUnitRows == 2 * kTileRows, "a unit is two tiles");

}  // namespace

void small_batch_rows(const SmallBatchOutput& o, const float* xt, int64_t M, int64_t Mp, const float* weight,
                      const float* bias, int64_t K, int64_t N, int64_t n0, int64_t nr, bool tiles) {
  if (tiles) return any_unit<true>(nr, o, xt, M, Mp, weight, bias, K, N, n0);
  any_unit<false>(nr, o, xt, M, Mp, weight, bias, K, N, n0);
}

}  // namespace starflow::core::cpu::avx512
#endif
