// Linear forward for a few rows (token-by-token decoding: one row per sample), where BLAS packing and
// threading overheads dominate. The rows are held transposed, xt [K, Mp] (Mp = rows rounded up to 8,
// padding columns arbitrary but finite), and outᵀ = W · xt is computed in register tiles that load each
// weight once per call (the weights stream from L2/L3 once; the few rows sit in L1).
//
// The *_team functions are OpenMP orphaned work-sharing constructs: call them from every thread of a
// parallel region (the decode step runs a whole layer in one region), or outside any region, where they
// run on the calling thread. Each ends with the implicit barrier of its work-sharing loop.
#pragma once
#include <cstdint>

#include "core/build_config.h"

namespace starflow::core::cpu {

// Rows up to which linear_forward uses this kernel for float.
constexpr int64_t kSmallBatchRows = 48;

// The team functions below exist only when the build has the kernel (STARFLOW_SMALL_BATCH_KERNEL, AVX2 + FMA).

inline int64_t small_batch_padded_rows(int64_t M) { return (M + 7) / 8 * 8; }

// Where a small-batch linear writes: out[m, n] = (xt-product + bias[n]) (+ residual[m, n]), row-major with
// leading dimension N; or, when out_t is set, out_t[n, m] (the next layer's xt, Mp columns, every column
// including the padding written) with GELU applied when gelu is set. out must not alias residual.
struct SmallBatchOutput {
  float* out = nullptr;
  const float* residual = nullptr;
  float* out_t = nullptr;
  bool gelu = false;
};

// How the weights W [N, K] are laid out. kRows: row-major (PyTorch's layout). kTiles: in the kernel's
// register tiles of 6 output rows, each tile k-major (tile_small_batch_weight): one contiguous stream per
// tile instead of six row streams, which the hardware prefetchers follow (sampling streams every weight
// once per token step, from L3 or DRAM). kLaneTiles: tiles of 16 rows, each k-major, read by the AVX-512
// kernel that is vectorised over weight rows (only where cpu_isa() is AVX-512; small_batch_avx512.h). A tile
// starts at the same offset as its first row, so a tiled copy of a parameter buffer keeps every tensor's
// offset. Same sums in the same order in every layout: same bits.
enum class SmallBatchWeights { kRows, kTiles, kLaneTiles };

#ifdef STARFLOW_SMALL_BATCH_KERNEL
// dst [N·K] ← W [N, K] in `layout` (kTiles or kLaneTiles; dst must not alias w).
void tile_small_batch_weight(float* dst, const float* w, int64_t K, int64_t N,
                             SmallBatchWeights layout = SmallBatchWeights::kTiles);

// The tile layout the decode weights take on this host: kLaneTiles where cpu_isa() is AVX-512, else kTiles.
SmallBatchWeights decode_tile_layout();

// xt [K, Mp] ← inᵀ for in [M, K] row-major; padding columns zeroed. Team op.
void small_batch_transpose_team(float* xt, const float* in, int64_t M, int64_t K);

// Weight W [N, K] (PyTorch layout), bias [N] or null, against xt [K, Mp] holding M rows. Team op.
void small_batch_linear_team(const SmallBatchOutput& o, const float* xt, int64_t M, const float* weight,
                             const float* bias, int64_t K, int64_t N,
                             SmallBatchWeights layout = SmallBatchWeights::kRows);
#endif

// out [M, N] = in [M, K] · Wᵀ + b: one parallel region around the two team steps (past 64 rows, blocked like
// a GEMM). Without AVX2, a portable loop with the same summation scheme. Either way a row's bits do not
// depend on the row count or the thread count.
void linear_forward_small_batch(float* out, const float* in, const float* weight, const float* bias, int64_t M,
                                int64_t K, int64_t N, SmallBatchWeights layout = SmallBatchWeights::kRows);

}  // namespace starflow::core::cpu
