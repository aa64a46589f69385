// Dense attention on the CPU through the project's gemm: each (batch, head) is cut into fixed blocks of query
// rows (forward, and the query side of backward) or key columns (the key side of backward), and the blocks are
// spread over the OpenMP threads, each block's products running as single-threaded gemms. The cut depends only
// on the shapes, so the results do not depend on the thread count; one VAE attention (one head, S = 1024 pixels,
// C = 512) still yields 16 blocks to share out.
#include "core/ops/cpu/attention_dense.h"

#include <algorithm>

#include "core/ops/cpu/gemm.h"
#include "core/ops/cpu/vector_math.h"

namespace starflow::core::cpu {

namespace {

// Query rows (or key columns) per block: a gemm of 64 rows runs near the kernel's peak, and 64 rows of
// probabilities (64·S values) stay in cache between the score product and the softmax.
constexpr int64_t kBlock = 64;

// Below about this many multiply-adds a fork/join costs more than the attention.
constexpr int64_t kParallelWork = 256 * 1024;

int64_t blocks_of(int64_t S) { return (S + kBlock - 1) / kBlock; }

}  // namespace

template <class T>
void attention_dense_forward(T* out, T* probs, const T* q, const T* k, const T* v, const T* bias,
                             const T* key_mask_add, int64_t B, int64_t S, int64_t n_head, int64_t head_dim, T scale) {
  const int64_t HD = n_head * head_dim, blocks = blocks_of(S), items = B * n_head * blocks;
#pragma omp parallel for schedule(static) if (B * n_head * S * S * head_dim > kParallelWork)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t b = item / (n_head * blocks), h = item / blocks % n_head, i0 = item % blocks * kBlock;
    const int64_t rows = std::min(kBlock, S - i0);
    const int64_t head = b * S * HD + h * head_dim;  // row 0 of this head in q, k, v and out
    T* p = probs + ((b * n_head + h) * S + i0) * S;
    gemm<T>(false, true, rows, S, head_dim, scale, q + head + i0 * HD, HD, k + head, HD, T(0), p, S);
    for (int64_t r = 0; r < rows; ++r) {
      T* row = p + r * S;
      if (bias != nullptr) {
        const T* bias_row = bias + (h * S + i0 + r) * S;
        for (int64_t j = 0; j < S; ++j) row[j] += bias_row[j];
      }
      if (key_mask_add != nullptr) {
        const T* mask = key_mask_add + b * S;
        for (int64_t j = 0; j < S; ++j) row[j] += mask[j];
      }
      T max_score = row[0];
      for (int64_t j = 1; j < S; ++j) max_score = row[j] > max_score ? row[j] : max_score;
      const T inv_sum = T(1) / exp_shifted_sum(row, S, T(1), max_score);
      for (int64_t j = 0; j < S; ++j) row[j] *= inv_sum;
    }
    gemm<T>(false, false, rows, head_dim, S, T(1), p, S, v + head, HD, T(0), out + head + i0 * HD, HD);
  }
}

template <class T>
void attention_dense_backward(T* dq, T* dk, T* dv, T* dbias, T* scratch, const T* dout, const T* q, const T* k,
                              const T* v, const T* probs, int64_t B, int64_t S, int64_t n_head, int64_t head_dim,
                              T scale) {
  const int64_t HD = n_head * head_dim, blocks = blocks_of(S), items = B * n_head * blocks;
  const bool parallel = B * n_head * S * S * head_dim > kParallelWork;
  // Query side: dP = dO·Vᵀ, dS = P ⊙ (dP − Σ_j dP·P) (the scores' gradient, kept in scratch), dQ = scale·dS·K.
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t b = item / (n_head * blocks), h = item / blocks % n_head, i0 = item % blocks * kBlock;
    const int64_t rows = std::min(kBlock, S - i0);
    const int64_t head = b * S * HD + h * head_dim;
    const int64_t offset = ((b * n_head + h) * S + i0) * S;
    T* ds = scratch + offset;
    const T* p = probs + offset;
    gemm<T>(false, true, rows, S, head_dim, T(1), dout + head + i0 * HD, HD, v + head, HD, T(0), ds, S);
    for (int64_t r = 0; r < rows; ++r) {
      T* ds_row = ds + r * S;
      const T* p_row = p + r * S;
      T row_dot = 0;
      for (int64_t j = 0; j < S; ++j) row_dot += ds_row[j] * p_row[j];
      for (int64_t j = 0; j < S; ++j) ds_row[j] = p_row[j] * (ds_row[j] - row_dot);
    }
    if (dq != nullptr)
      gemm<T>(false, false, rows, head_dim, S, scale, ds, S, k + head, HD, T(0), dq + head + i0 * HD, HD);
  }
  // Key side, per block of keys: dK = scale·dSᵀ·Q, dV = Pᵀ·dO.
  if (dk != nullptr || dv != nullptr) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t b = item / (n_head * blocks), h = item / blocks % n_head, j0 = item % blocks * kBlock;
      const int64_t cols = std::min(kBlock, S - j0);
      const int64_t head = b * S * HD + h * head_dim;
      const int64_t offset = (b * n_head + h) * S * S + j0;
      if (dk != nullptr)
        gemm<T>(true, false, cols, head_dim, S, scale, scratch + offset, S, q + head, HD, T(0), dk + head + j0 * HD,
                HD);
      if (dv != nullptr)
        gemm<T>(true, false, cols, head_dim, S, T(1), probs + offset, S, dout + head, HD, T(0), dv + head + j0 * HD,
                HD);
    }
  }
  // The bias is shared by the batch: its gradient sums the scores' gradients over b, in order.
  if (dbias != nullptr) {
    const int64_t n = n_head * S * S;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t hi = 0; hi < n_head * S; ++hi) {
      T* dst = dbias + hi * S;
      for (int64_t b = 0; b < B; ++b) {
        const T* src = scratch + b * n + hi * S;
        for (int64_t j = 0; j < S; ++j) dst[j] += src[j];
      }
    }
  }
}

template void attention_dense_forward<float>(float*, float*, const float*, const float*, const float*, const float*,
                                             const float*, int64_t, int64_t, int64_t, int64_t, float);
template void attention_dense_forward<double>(double*, double*, const double*, const double*, const double*,
                                              const double*, const double*, int64_t, int64_t, int64_t, int64_t,
                                              double);
template void attention_dense_backward<float>(float*, float*, float*, float*, float*, const float*, const float*,
                                              const float*, const float*, const float*, int64_t, int64_t, int64_t,
                                              int64_t, float);
template void attention_dense_backward<double>(double*, double*, double*, double*, double*, const double*,
                                               const double*, const double*, const double*, const double*, int64_t,
                                               int64_t, int64_t, int64_t, double);

}  // namespace starflow::core::cpu
