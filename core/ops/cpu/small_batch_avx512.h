// The AVX-512 variants of the CPU kernels (linear_small_batch_avx512.cpp, linear_lanes_avx512.cpp,
// attention_cached_avx512.cpp, gelu_avx512.cpp, normalize_transposed_avx512.cpp, flow_head_avx512.cpp,
// attention_avx512.cpp, norms_avx512.cpp, rope_avx512.cpp),
// called by the dispatching kernels when cpu_isa() says so (core/ops/cpu/cpu_isa.h). Only in builds with
// STARFLOW_AVX512_KERNELS; calling them on a host without AVX-512 faults.
#pragma once
#include <cstdint>

#include "core/build_config.h"
#include "core/ops/cpu/linear_small_batch.h"
#include "core/ops/flow_head_options.h"

namespace starflow::core::cpu::avx512 {

#ifdef STARFLOW_AVX512_KERNELS
// Rows per unit of work of the AVX-512 linear: two of the tile layout's 6-row tiles (32 vector registers hold
// 12 × 2 accumulators of 16 lanes), so a unit starts on a tile.
constexpr int64_t kUnitRows = 12;

// Weight rows n0..n0+nr (nr ≤ kUnitRows) of the small-batch linear against every row of xt [K, Mp] holding M
// rows, written as o says (without GELU: the caller applies it). The same sums in the same order as the AVX2
// kernel (each output one accumulator lane over k in blocks of 128, the block totals added in order), so the
// same bits; 16 rows per vector instead of 8 and twice the weight rows per pass.
void small_batch_rows(const SmallBatchOutput& o, const float* xt, int64_t M, int64_t Mp, const float* weight,
                      const float* bias, int64_t K, int64_t N, int64_t n0, int64_t nr, bool tiles);

// The lane-tile layout (SmallBatchWeights::kLaneTiles): tiles of 16 weight rows, each k-major, so that the
// 16 rows of one k are one vector; and its units of work: three tiles (8 × 3 accumulators of 16 lanes).
constexpr int64_t kLaneTileRows = 16;
constexpr int64_t kLaneUnitRows = 48;

// Weight rows n0..n0+nr (n0 a multiple of kLaneUnitRows, nr ≤ kLaneUnitRows) of weights in lane-tile layout
// against every row of xt [K, Mp] holding M rows, written as o says (without GELU), in passes of 8 rows
// vectorised over the weight rows (linear_lanes_avx512.cpp): the same sums in the same order as
// small_batch_rows and the AVX2 kernel, so the same bits; full vector width from 8 rows up.
void small_batch_lanes(const SmallBatchOutput& o, const float* xt, int64_t M, int64_t Mp, const float* weight,
                       const float* bias, int64_t K, int64_t N, int64_t n0, int64_t nr);

// One query against `keys` cached key and value rows (head_dim dh, a multiple of 16): scores, softmax with
// max subtraction (exp_shifted_sum's exp), weighted sum of values; writes o[d·stride]. p: keys floats of
// scratch, qs: dh floats of scratch.
void attend(float* o, int64_t stride, const float* q, const float* K, const float* V, int64_t keys, int64_t dh,
            float scale, float* p, float* qs);

// The exact GELU on the calling thread: out[i] = gelu(in[i]) (out may alias in); and din = dout · gelu'(in)
// for one block of n elements with cdf: n floats of scratch.
void gelu_forward(float* out, const float* in, int64_t n);
void gelu_backward(float* din, const float* dout, const float* in, int64_t n, float* cdf);

// One step of normalize_transposed_team: rows r0..r0+15 (the first `valid` real, the rest written as 0) of
// features j0..j0+7 of in [M, C], into xt [C, Mp]: xt[j0+f, r] = ((in[r, j0+f] − shift[r])·scale[r])·gain[f]
// (+ beta[f]); shift and scale hold r0 + 16 entries, gain and beta (or null) point at feature j0.
void normalize_rows16(float* xt, int64_t Mp, const float* in, int64_t r0, int64_t valid, int64_t C, int64_t j0,
                      const float* shift, const float* scale, const float* gain, const float* beta);

// The training attention's matrix kernel (attention.cpp): out[r][c] = Σ_{k ∈ [k_begin, k_end)} coef[r·coef_row +
// k·coef_k] · mat[k][c] for r < rows (1 or 4) and c < n_cols (a multiple of 16); the AVX2 kernel's bits.
void rows_times_matrix(int rows, float* out, int64_t ld_out, const float* coef, int64_t coef_row, int64_t coef_k,
                       const float* mat, int64_t ld_mat, int64_t k_begin, int64_t k_end, int64_t n_cols);

// The training norms (layernorm.h, rmsnorm.h, rmsnorm_gain.h: same arguments; unit_offset picks RMSNorm's gain,
// 1 + g or w) and the row statistics their decode-step forms use (as layernorm_forward and rmsnorm_forward
// compute them, so the same bits).
void layernorm_forward(float* out, float* mean, float* rstd, const float* in, const float* gamma, const float* beta,
                       int64_t rows, int64_t C, float eps);
void layernorm_backward(float* din, float* dgamma, float* dbeta, const float* dout, const float* in,
                        const float* mean, const float* rstd, const float* gamma, int64_t rows, int64_t C,
                        bool accumulate_din);
void layernorm_statistics(float* mean, float* rstd, const float* in, int64_t rows, int64_t C, float eps);
void rmsnorm_forward(float* out, float* rrms, const float* in, const float* g, int64_t rows, int64_t C, float eps,
                     bool unit_offset);
void rmsnorm_backward(float* din, float* dg, const float* dout, const float* in, const float* rrms, const float* g,
                      int64_t rows, int64_t C, bool accumulate_din, bool unit_offset);
void rms_statistics(float* rrms, const float* in, int64_t rows, int64_t C, float eps);

// rope_rotate (core/ops/cpu/rope.h) for float in the adjacent-pair layout, with the table's cos and sin rows
// [rows, dh].
void rope_rotate(float* x, int64_t batch, int64_t rows, int64_t batch_stride, int64_t row_stride, int64_t n_heads,
                 const float* cos, const float* sin, int64_t dh, int64_t row_offset, bool inverse);

// The flow head (core/ops/cpu/flow_head.h) on 16-lane packets: same arguments, same meaning.
void flow_head_forward(float* z, float* logdet, const float* o, const float* v, int64_t rows, int64_t D,
                       const FlowHeadOptions& opt);
void flow_head_sigma_mu(float* sigma, float* mu, const float* o, int64_t rows, int64_t D,
                        const FlowHeadOptions& opt);
void flow_head_backward(float* d_o, float* dv, const float* dz, float dlogdet, const float* o, const float* v,
                        int64_t rows, int64_t D, const FlowHeadOptions& opt);
#endif

}  // namespace starflow::core::cpu::avx512
