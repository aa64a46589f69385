// The small-batch linear vectorised over weight rows (AVX-512), for weights in lane-tile layout
// (SmallBatchWeights::kLaneTiles: tiles of 16 weight rows, each k-major, so W[n0..n0+16, k] is one vector).
// A pass holds 8 input rows × 3 tiles (48 weight rows) in 24 accumulators: per k, three weight vectors and
// eight broadcasts of the inputs feed 24 FMAs — the ratio of the 12-row × 32-row tile of
// linear_small_batch_avx512.cpp, but at 8 input rows, where that kernel drops to 8-lane vectors. That is what
// lets sequential decoding split a 16-sample batch into one 8-row group per thread (no team barriers).
// Each output element is one accumulator lane summed in k order, in blocks of 128 terms whose totals are added
// in order: the AVX2 kernel's sums, so its bits. Compiled for AVX-512 (CMakeLists.txt) and reached only
// through cpu_isa(): everything here has internal linkage but the entry point.
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

// Must equal the AVX2 kernel's: the k block decides the bits.
constexpr int64_t kSumBlock = 128;
// Input rows per pass (8 broadcasts per k; 8 × 3 accumulators + 3 weight vectors + 1 broadcast of 32 registers).
constexpr int kRows = 8;
// Software prefetch distance along each tile's stream, in k's (one 64-byte line per k): the first pass over a
// unit reads its weights from L3 or DRAM, later passes (more than 8 input rows) find them in L2.
constexpr int64_t kPrefetch = 64;

constexpr int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// The NV tiles of a unit: tile v holds rows[v] weight rows (16 but for a short last tile), W[row + i, k] at
// p[v][k · rows[v] + i]; mask[v] has one bit per row.
template <int NV>
struct LaneTiles {
  const float* p[NV];
  int64_t rows[NV];
  __mmask16 mask[NV];
  LaneTiles(const float* w, int64_t K, int64_t N, int64_t n0) {
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) {
      const int64_t row = n0 + kLaneTileRows * v;
      rows[v] = min64(kLaneTileRows, N - row);
      p[v] = w + row * K;
      mask[v] = static_cast<__mmask16>((1u << rows[v]) - 1u);
    }
  }
};

// Input rows m0..m0+8 of xt [K, Mp] against the unit's weight rows n0..: written as o says (GELU is the
// caller's). Short: the last tile has fewer than 16 rows (masked loads, its own stride); otherwise every stride
// is 16 and the loads are plain. Prefetch: the first pass over the unit (later ones find it in L2).
template <int NV, bool Short, bool Prefetch>
void pass(const SmallBatchOutput& o, const float* xt, int64_t Mp, int64_t m0, int64_t M, const LaneTiles<NV>& w,
          const float* bias, int64_t K, int64_t N, int64_t n0) {
  const int64_t last_stride = Short ? w.rows[NV - 1] : kLaneTileRows;
  __m512 acc[kRows][NV], total[kRows][NV];
#pragma GCC unroll 8
  for (int m = 0; m < kRows; ++m)
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) total[m][v] = _mm512_setzero_ps();
  for (int64_t kb = 0; kb < K; kb += kSumBlock) {
#pragma GCC unroll 8
    for (int m = 0; m < kRows; ++m)
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[m][v] = _mm512_setzero_ps();
    const int64_t k_end = min64(K, kb + kSumBlock);
    const float* x = xt + kb * Mp + m0;
    const float* wp[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) wp[v] = w.p[v] + kb * (v == NV - 1 ? last_stride : kLaneTileRows);
#pragma GCC unroll 4
    for (int64_t k = kb; k < k_end; ++k, x += Mp) {
      __m512 wv[NV];
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) {
        const bool masked = Short && v == NV - 1;
        const int64_t stride = masked ? last_stride : kLaneTileRows;
        if constexpr (Prefetch) _mm_prefetch(reinterpret_cast<const char*>(wp[v] + kPrefetch * stride), _MM_HINT_T0);
        wv[v] = masked ? _mm512_maskz_loadu_ps(w.mask[v], wp[v]) : _mm512_loadu_ps(wp[v]);
        wp[v] += stride;
      }
#pragma GCC unroll 8
      for (int m = 0; m < kRows; ++m) {
        const __m512 b = _mm512_set1_ps(x[m]);
#pragma GCC unroll 3
        for (int v = 0; v < NV; ++v) acc[m][v] = _mm512_fmadd_ps(b, wv[v], acc[m][v]);
      }
    }
#pragma GCC unroll 8
    for (int m = 0; m < kRows; ++m)
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) total[m][v] = _mm512_add_ps(total[m][v], acc[m][v]);
  }
  __m512 b[NV];
#pragma GCC unroll 3
  for (int v = 0; v < NV; ++v)
    b[v] = bias != nullptr ? _mm512_maskz_loadu_ps(w.mask[v], bias + n0 + kLaneTileRows * v) : _mm512_setzero_ps();
  if (o.out_t != nullptr) {
    // Transposed, every column of the pass including the padding: each 8-lane half of the tiles' vectors
    // through an 8 × 8 transpose, so weight row n's 8 inputs leave as one store at out_t[n · Mp + m0].
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v)
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const int64_t first = n0 + kLaneTileRows * v + 8 * h, count = min64(8, w.rows[v] - 8 * h);
        if (count <= 0) continue;
        __m256 r[8];
#pragma GCC unroll 8
        for (int m = 0; m < kRows; ++m) {
          const __m512 t = _mm512_add_ps(total[m][v], b[v]);
          r[m] = h == 0 ? _mm512_castps512_ps256(t) : _mm512_extractf32x8_ps(t, 1);
        }
        transpose8(r);
        for (int64_t i = 0; i < count; ++i) _mm256_storeu_ps(o.out_t + (first + i) * Mp + m0, r[i]);
      }
    return;
  }
  // Row-major: row m's outputs of tile v are one masked store of exactly the tile's columns (the neighbouring
  // columns may belong to another thread).
  const int64_t rows = min64(kRows, M - m0);
  for (int64_t m = 0; m < rows; ++m) {
    const int64_t at = (m0 + m) * N + n0;
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) {
      __m512 t = _mm512_add_ps(total[m][v], b[v]);
      if (o.residual != nullptr)
        t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(w.mask[v], o.residual + at + kLaneTileRows * v));
      _mm512_mask_storeu_ps(o.out + at + kLaneTileRows * v, w.mask[v], t);
    }
  }
}

template <int NV, bool Short>
void passes(const SmallBatchOutput& o, const float* xt, int64_t M, int64_t Mp, const LaneTiles<NV>& w,
            const float* bias, int64_t K, int64_t N, int64_t n0) {
  pass<NV, Short, true>(o, xt, Mp, 0, M, w, bias, K, N, n0);
  for (int64_t m0 = kRows; m0 < Mp; m0 += kRows) pass<NV, Short, false>(o, xt, Mp, m0, M, w, bias, K, N, n0);
}

template <int NV>
void unit(const SmallBatchOutput& o, const float* xt, int64_t M, int64_t Mp, const float* weight, const float* bias,
          int64_t K, int64_t N, int64_t n0) {
  const LaneTiles<NV> w(weight, K, N, n0);
  if (w.rows[NV - 1] < kLaneTileRows) return passes<NV, true>(o, xt, M, Mp, w, bias, K, N, n0);
  passes<NV, false>(o, xt, M, Mp, w, bias, K, N, n0);
}

static_assert(kLaneUnitRows == 3 * kLaneTileRows, "a unit is three lane tiles");

}  // namespace

void small_batch_lanes(const SmallBatchOutput& o, const float* xt, int64_t M, int64_t Mp, const float* weight,
                       const float* bias, int64_t K, int64_t N, int64_t n0, int64_t nr) {
  switch ((nr + kLaneTileRows - 1) / kLaneTileRows) {
    case 1: return unit<1>(o, xt, M, Mp, weight, bias, K, N, n0);
    case 2: return unit<2>(o, xt, M, Mp, weight, bias, K, N, n0);
    default: return unit<3>(o, xt, M, Mp, weight, bias, K, N, n0);
  }
}

}  // namespace starflow::core::cpu::avx512
#endif
