// The small-batch linear kernel (AVX2/FMA; its AVX-512 twin in linear_small_batch_avx512.cpp), computed as outᵀ = W · inᵀ so that the weights need no packing:
// a register tile of NR weight rows × 16 input rows (two vectors of 8) accumulates W[n, k] (broadcast) ·
// xt[k, :] over k; a last panel of 8 rows uses one vector. The tile's weight rows stay in L1 while every
// panel of rows passes over them, so each weight streams from memory once per call and the arithmetic
// runs at FMA throughput (80–90% of the core's peak, against ≈50% for dot products along k). Every output
// element is one accumulator lane summed in k order (blocks of 128 terms, their totals added in order):
// results do not depend on the thread count or on how the rows are split.
#include "core/ops/cpu/linear_small_batch.h"

#include <omp.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "core/ops/cpu/gelu.h"

#ifdef STARFLOW_SMALL_BATCH_KERNEL
#include <immintrin.h>

#include "core/ops/cpu/avx2_transpose.h"
#include "core/ops/cpu/cpu_isa.h"
#include "core/ops/cpu/small_batch_avx512.h"
#endif

namespace starflow::core::cpu {

#ifdef STARFLOW_SMALL_BATCH_KERNEL
namespace {

// Weight rows per tile: 6 × 2 accumulators + 2 inputs + 1 broadcast fill 15 of the 16 vector registers.
constexpr int kTileRows = 6;
// Above this many rows linear_forward_small_batch blocks rows and weights (a multiple of the 16-row panel).
constexpr int64_t kBlockedRows = 64;

// The k sum runs in blocks of this many terms whose totals are added: one float accumulator over 1024
// terms carries several times the rounding error of blocks of 128 (the error grows with the terms per sum).
constexpr int64_t kSumBlock = 128;

// Software prefetch distance (floats) along the weight rows. A decode step's weights (6.3 MB per block of
// config A, more with its KV caches) do not all stay in this machine's share of L3: from DRAM, each tile's
// six fresh rows stall the hardware prefetcher at every tile start (K = 256: 55 → 89 GFLOP/s per core with
// this, measured with 24 MB of weights; no change when they are L3-resident).
constexpr int64_t kPrefetch = 256;

// Stores lanes 0..n−1 of v at dst with plain stores (n ≤ 8).
template <int n>
inline void store_first(float* dst, __m256 v) {
  if constexpr (n == 8) {
    _mm256_storeu_ps(dst, v);
  } else {
    const __m128 lo = _mm256_castps256_ps128(v);
    if constexpr (n >= 4) {
      _mm_storeu_ps(dst, lo);
      if constexpr (n > 4) {
        const __m128 hi = _mm256_extractf128_ps(v, 1);
        if constexpr (n == 5) _mm_store_ss(dst + 4, hi);
        if constexpr (n >= 6) _mm_storel_pi(reinterpret_cast<__m64*>(dst + 4), hi);
        if constexpr (n == 7) _mm_store_ss(dst + 6, _mm_movehl_ps(hi, hi));
      }
    } else {
      if constexpr (n == 1) _mm_store_ss(dst, lo);
      if constexpr (n >= 2) _mm_storel_pi(reinterpret_cast<__m64*>(dst), lo);
      if constexpr (n == 3) _mm_store_ss(dst + 2, _mm_movehl_ps(lo, lo));
    }
  }
}

// One panel: rows m0..m0+8·MV of xt against weight rows n0..n0+NR. The pragmas make GCC unroll the
// register arrays before scalar replacement; without them it spills every accumulator on every k. The
// block totals live in memory (L1) between blocks: only the k loop needs its accumulators in registers.
// Tiles: the weights in tile layout (see tile_small_batch_weight): the tile is one stream, W[n0 + i, k] at
// w[n0·K + k·NR + i]; otherwise NR row streams, W[n0 + i, k] at w[(n0 + i)·K + k].
template <int MV, int NR, bool Tiles>
void panel(const SmallBatchOutput& o, const float* xt, int64_t Mp, int64_t m0, int64_t M, const float* w,
           const float* bias, int64_t K, int64_t N, int64_t n0) {
  const float* wr[NR];
#pragma GCC unroll 8
  for (int i = 0; i < NR; ++i) wr[i] = w + (n0 + i) * K;
  const float* wt = w + n0 * K;
  const bool first_panel = m0 == 0;  // later panels find the tile's weights in L1
  __m256 acc[NR][MV], total[NR][MV];
#pragma GCC unroll 8
  for (int i = 0; i < NR; ++i)
#pragma GCC unroll 2
    for (int j = 0; j < MV; ++j) total[i][j] = _mm256_setzero_ps();
  for (int64_t kb = 0; kb < K; kb += kSumBlock) {
#pragma GCC unroll 8
    for (int i = 0; i < NR; ++i)
#pragma GCC unroll 2
      for (int j = 0; j < MV; ++j) acc[i][j] = _mm256_setzero_ps();
    const int64_t k_end = std::min(K, kb + kSumBlock);
    const float* x = xt + kb * Mp + m0;
    for (int64_t k0 = kb; k0 < k_end; k0 += 16) {
      if (first_panel && Tiles) {
        // The 16 k's of weights kPrefetch k's ahead in the tile's stream (into the next tile near the end).
        const float* ahead = wt + (k0 + kPrefetch) * NR;
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) _mm_prefetch(reinterpret_cast<const char*>(ahead + 16 * i), _MM_HINT_T0);
      } else if (first_panel) {
        // kPrefetch floats ahead along this thread's weight stream, into the next tile's rows near the end.
        const int64_t ahead = k0 + kPrefetch < K ? k0 + kPrefetch : NR * K + k0 + kPrefetch - K;
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) _mm_prefetch(reinterpret_cast<const char*>(wr[i] + ahead), _MM_HINT_T0);
      }
      const int64_t k1 = std::min(k_end, k0 + 16);
#pragma GCC unroll 4
      for (int64_t k = k0; k < k1; ++k, x += Mp) {
        __m256 xv[MV];
#pragma GCC unroll 2
        for (int j = 0; j < MV; ++j) xv[j] = _mm256_loadu_ps(x + 8 * j);
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) {
          const __m256 b = _mm256_broadcast_ss(Tiles ? wt + k * NR + i : wr[i] + k);
#pragma GCC unroll 2
          for (int j = 0; j < MV; ++j) acc[i][j] = _mm256_fmadd_ps(b, xv[j], acc[i][j]);
        }
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < NR; ++i)
#pragma GCC unroll 2
      for (int j = 0; j < MV; ++j) total[i][j] = _mm256_add_ps(total[i][j], acc[i][j]);
  }
  if (o.out_t != nullptr) {  // transposed: whole vectors, padding columns included
#pragma GCC unroll 8
    for (int i = 0; i < NR; ++i) {
      const __m256 b = _mm256_set1_ps(bias ? bias[n0 + i] : 0.f);
      float* dst = o.out_t + (n0 + i) * Mp + m0;
#pragma GCC unroll 2
      for (int j = 0; j < MV; ++j) _mm256_storeu_ps(dst + 8 * j, _mm256_add_ps(total[i][j], b));
    }
    return;
  }
  // Row-major: transpose each 8-row block in registers (column i of the tile becomes lane i of row m), so
  // a row's NR outputs leave in one or two plain stores of exactly NR floats (masked stores are slow on this
  // core, ~10% of a K = 256 tile, and wider stores would write columns another thread may own).
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(NR), lanes);
  const __m256 b = bias ? _mm256_maskload_ps(bias + n0, mask) : _mm256_setzero_ps();
#pragma GCC unroll 2
  for (int j = 0; j < MV; ++j) {
    __m256 r[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) r[i] = i < NR ? total[i < NR ? i : 0][j] : _mm256_setzero_ps();
    transpose8(r);
    const int64_t rows = std::min<int64_t>(8, M - (m0 + 8 * j));
    for (int64_t l = 0; l < rows; ++l) {
      const int64_t m = m0 + 8 * j + l;
      __m256 v = _mm256_add_ps(r[l], b);
      if (o.residual) v = _mm256_add_ps(v, _mm256_maskload_ps(o.residual + m * N + n0, mask));
      store_first<NR>(o.out + m * N + n0, v);
    }
  }
}

template <int NR, bool Tiles>
void tile(const SmallBatchOutput& o, const float* xt, int64_t M, const float* w, const float* bias, int64_t K,
          int64_t N, int64_t n0) {
  const int64_t Mp = small_batch_padded_rows(M);
  int64_t m0 = 0;
  for (; m0 + 16 <= Mp; m0 += 16) panel<2, NR, Tiles>(o, xt, Mp, m0, M, w, bias, K, N, n0);
  if (m0 < Mp) panel<1, NR, Tiles>(o, xt, Mp, m0, M, w, bias, K, N, n0);
}

// The tile of weight rows n0..n0+nr (nr ≤ kTileRows: the last tile may be short).
template <bool Tiles>
void any_tile(int64_t nr, const SmallBatchOutput& o, const float* xt, int64_t M, const float* w, const float* bias,
              int64_t K, int64_t N, int64_t n0) {
  switch (nr) {
    case 1: return tile<1, Tiles>(o, xt, M, w, bias, K, N, n0);
    case 2: return tile<2, Tiles>(o, xt, M, w, bias, K, N, n0);
    case 3: return tile<3, Tiles>(o, xt, M, w, bias, K, N, n0);
    case 4: return tile<4, Tiles>(o, xt, M, w, bias, K, N, n0);
    case 5: return tile<5, Tiles>(o, xt, M, w, bias, K, N, n0);
    default: return tile<kTileRows, Tiles>(o, xt, M, w, bias, K, N, n0);
  }
}

// Weight rows per unit of work: one tile for the AVX2 kernel, two for the AVX-512 one, three lane tiles for the
// AVX-512 kernel over weight rows (same bits in every case).
int64_t unit_rows(bool avx512, SmallBatchWeights layout) {
  if (layout == SmallBatchWeights::kLaneTiles) {
    if (!avx512) throw std::logic_error("lane-tile weights need the AVX-512 kernel (cpu_isa() is not AVX-512)");
    return avx512::kLaneUnitRows;
  }
  return avx512 ? avx512::kUnitRows : kTileRows;
}

// The unit of weight rows n0..n0+nr (nr ≤ unit_rows) against every row of xt.
void run_unit(bool avx512, SmallBatchWeights layout, int64_t nr, const SmallBatchOutput& o, const float* xt,
              int64_t M, const float* w, const float* bias, int64_t K, int64_t N, int64_t n0) {
  const bool tiles = layout == SmallBatchWeights::kTiles;
  if (layout == SmallBatchWeights::kLaneTiles)
    return avx512::small_batch_lanes(o, xt, M, small_batch_padded_rows(M), w, bias, K, N, n0, nr);
  if (avx512)
    return avx512::small_batch_rows(o, xt, M, small_batch_padded_rows(M), w, bias, K, N, n0, nr, tiles);
  if (tiles) return any_tile<true>(nr, o, xt, M, w, bias, K, N, n0);
  any_tile<false>(nr, o, xt, M, w, bias, K, N, n0);
}

}  // namespace

void small_batch_transpose_team(float* xt, const float* in, int64_t M, int64_t K) {
  const int64_t Mp = small_batch_padded_rows(M);
#pragma omp for schedule(static)
  for (int64_t k = 0; k < K; ++k) {
    float* row = xt + k * Mp;
    for (int64_t m = 0; m < M; ++m) row[m] = in[m * K + k];
    for (int64_t m = M; m < Mp; ++m) row[m] = 0.f;
  }
}

void tile_small_batch_weight(float* dst, const float* w, int64_t K, int64_t N, SmallBatchWeights layout) {
  if (layout == SmallBatchWeights::kRows) throw std::logic_error("tile_small_batch_weight: kRows is no tile layout");
  const int64_t tile = layout == SmallBatchWeights::kLaneTiles ? avx512::kLaneTileRows : kTileRows;
#pragma omp parallel for schedule(static) if (N * K > (1 << 16))
  for (int64_t n0 = 0; n0 < N; n0 += tile) {
    const int64_t nr = std::min<int64_t>(tile, N - n0);
    float* t = dst + n0 * K;
    for (int64_t i = 0; i < nr; ++i)
      for (int64_t k = 0; k < K; ++k) t[k * nr + i] = w[(n0 + i) * K + k];
  }
}

SmallBatchWeights decode_tile_layout() {
  return use_avx512() ? SmallBatchWeights::kLaneTiles : SmallBatchWeights::kTiles;
}

void small_batch_linear_team(const SmallBatchOutput& o, const float* xt, int64_t M, const float* weight,
                             const float* bias, int64_t K, int64_t N, SmallBatchWeights layout) {
  // Tiles of weight rows are handed out dynamically, large runs first (guided): an equal static split left
  // one thread waiting at the barrier for the other 5-10% of the time (whichever core the cache misses or
  // another tenant slowed), and the runs shrink to single tiles at the end. A row's sums do not depend on
  // the tile it falls in or the thread that computes it, so the schedule does not change any bits. GELU
  // follows each tile on the rows of out_t it wrote (whole packets of 8: Mp is a multiple of 8).
  const bool avx512 = use_avx512();
  const int64_t unit = unit_rows(avx512, layout), units = (N + unit - 1) / unit, Mp = small_batch_padded_rows(M);
#pragma omp for schedule(guided) nowait
  for (int64_t t = 0; t < units; ++t) {
    const int64_t n0 = t * unit, nr = std::min<int64_t>(unit, N - n0);
    run_unit(avx512, layout, nr, o, xt, M, weight, bias, K, N, n0);
    if (o.out_t != nullptr && o.gelu) gelu_forward_serial(o.out_t + n0 * Mp, o.out_t + n0 * Mp, nr * Mp);
  }
#pragma omp barrier
}

namespace {

// Many rows (Jacobi chunks, long text prefixes): blocked like a GEMM so that neither operand streams from
// memory once per tile. The rows go in chunks of kBlockedRows (their transposes in L2), the weight rows in
// blocks of which each thread keeps the same static share for every chunk (in its L2), and a tile's six
// weight rows stay in L1 across the chunk's panels. Each output element is still the same panel's sum in
// k order, so the bits equal the unblocked kernel's for any row count and thread count (BLAS's do not).
void linear_forward_small_batch_blocked(float* out, const float* in, const float* weight, const float* bias,
                                        int64_t M, int64_t K, int64_t N, SmallBatchWeights layout) {
  thread_local std::vector<float> xt;
  const int64_t chunks = (M + kBlockedRows - 1) / kBlockedRows;
  const size_t need = static_cast<size_t>(chunks * K * kBlockedRows);
  if (xt.size() < need) xt.resize(need);
  float* xbuf = xt.data();
  // Weight rows per block: ~256 KB of weights, a multiple of the unit and at least one unit per thread.
  const bool avx512 = use_avx512();
  const int64_t unit = unit_rows(avx512, layout);
  const int64_t block = std::max<int64_t>(2 * unit, (256 * 1024 / 4) / K / unit * unit);
#pragma omp parallel
  {
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t m0 = c * kBlockedRows;
      small_batch_transpose_team(xbuf + c * K * kBlockedRows, in + m0 * K, std::min(kBlockedRows, M - m0), K);
    }
    const int64_t nth = omp_get_num_threads(), tid = omp_get_thread_num();
    for (int64_t nb0 = 0; nb0 < N; nb0 += block) {
      const int64_t nb1 = std::min(N, nb0 + block), units = (nb1 - nb0 + unit - 1) / unit;
      const int64_t t_begin = units * tid / nth, t_end = units * (tid + 1) / nth;
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t m0 = c * kBlockedRows, rows = std::min(kBlockedRows, M - m0);
        SmallBatchOutput o;
        o.out = out + m0 * N;
        for (int64_t t = t_begin; t < t_end; ++t) {
          const int64_t n0 = nb0 + t * unit, nr = std::min<int64_t>(unit, nb1 - n0);
          run_unit(avx512, layout, nr, o, xbuf + c * K * kBlockedRows, rows, weight, bias, K, N, n0);
        }
      }
    }
  }
}

}  // namespace
#endif

void linear_forward_small_batch(float* out, const float* in, const float* weight, const float* bias, int64_t M,
                                int64_t K, int64_t N, SmallBatchWeights layout) {
#ifdef STARFLOW_SMALL_BATCH_KERNEL
  thread_local std::vector<float> xt;
  if (M > kBlockedRows) return linear_forward_small_batch_blocked(out, in, weight, bias, M, K, N, layout);
  const size_t need = static_cast<size_t>(K * small_batch_padded_rows(M));
  if (xt.size() < need) xt.resize(need);
  float* xbuf = xt.data();  // the calling thread's buffer, shared by the team
  SmallBatchOutput o;
  o.out = out;
  // A second thread pays for its fork/join above ~100k multiply-adds.
#pragma omp parallel if (M * N * K > (1 << 17))
  {
    small_batch_transpose_team(xbuf, in, M, K);
    small_batch_linear_team(o, xbuf, M, weight, bias, K, N, layout);
  }
#else
  if (layout != SmallBatchWeights::kRows) throw std::logic_error("tiled small-batch weights need the AVX2 kernel");
  // Without AVX2 (PORTABLE builds), the kernel's summation scheme in portable code: each output is one sum
  // in k order, in blocks of 128 terms whose totals are added in order, from its own row alone, so the bits
  // do not depend on the thread count or on the rows a call holds either (BLAS's do: sampling would lose
  // "same seed, same samples"). Rows go transposed, eight at a time, so the inner loop vectorises.
  constexpr int64_t kBlock = 128, kLanes = 8;
  const int64_t Mp = small_batch_padded_rows(M);
  thread_local std::vector<float> xt;
  if (xt.size() < static_cast<size_t>(K * Mp)) xt.resize(K * Mp);
  float* x = xt.data();
  for (int64_t k = 0; k < K; ++k)
    for (int64_t m = 0; m < Mp; ++m) x[k * Mp + m] = m < M ? in[m * K + k] : 0.f;
#pragma omp parallel for schedule(static) if (M * N * K > (1 << 17))
  for (int64_t n = 0; n < N; ++n) {
    const float* w = weight + n * K;
    for (int64_t m0 = 0; m0 < M; m0 += kLanes) {
      float total[kLanes] = {}, acc[kLanes];
      for (int64_t kb = 0; kb < K; kb += kBlock) {
        for (float& a : acc) a = 0.f;
        const int64_t k_end = std::min(K, kb + kBlock);
        for (int64_t k = kb; k < k_end; ++k)
          for (int64_t l = 0; l < kLanes; ++l) acc[l] += w[k] * x[k * Mp + m0 + l];
        for (int64_t l = 0; l < kLanes; ++l) total[l] += acc[l];
      }
      for (int64_t l = 0; l < std::min(kLanes, M - m0); ++l)
        out[(m0 + l) * N + n] = bias != nullptr ? total[l] + bias[n] : total[l];
    }
  }
#endif
}

}  // namespace starflow::core::cpu
