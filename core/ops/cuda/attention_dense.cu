// Dense attention on the GPU, as the causal op (attention.cu) does it: the products as cuBLAS strided-batched
// GEMMs over (batch, head) (plans in attention_dense_plan.h, the scale folded into α), a softmax kernel that adds
// the optional bias and key mask, and for backward the softmax's Jacobian kernel and a deterministic batch sum
// for the bias gradient. The S×S probabilities are stored, as the CPU op stores them.
#include "core/ops/cuda/attention_dense.h"

#include "core/ops/cuda/attention_dense_plan.h"
#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/kernel_util.cuh"

namespace starflow::core::cuda {
namespace {

using detail::from_float;
using detail::to_float;
using detail::warp_max;
using detail::warp_sum;

constexpr int kWarpsPerBlock = 8;

// In place over probs [B·H·S, S] holding the scaled scores: row r is (b, h, i) = (r / (H·S), r / S mod H, r mod S).
// p = softmax_j(score + bias[h, i, j] + mask[b, j]), one warp per row, fp32 arithmetic.
template <class T>
__global__ void dense_softmax_kernel(T* probs, const T* bias, const T* mask, int64_t rows, int64_t S, int64_t H) {
  const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  T* p = probs + row * S;
  const T* bias_row = bias != nullptr ? bias + (row % (H * S)) * S : nullptr;
  const T* mask_row = mask != nullptr ? mask + (row / (H * S)) * S : nullptr;
  auto score = [&](int64_t j) {
    float s = to_float(p[j]);
    if (bias_row != nullptr) s += to_float(bias_row[j]);
    if (mask_row != nullptr) s += to_float(mask_row[j]);
    return s;
  };
  float max_score = -INFINITY;
  for (int64_t j = lane; j < S; j += 32) max_score = fmaxf(max_score, score(j));
  max_score = warp_max(max_score);
  float sum = 0.0f;
  for (int64_t j = lane; j < S; j += 32) sum += expf(score(j) - max_score);
  const float inv_sum = 1.0f / warp_sum(sum);
  // Each lane reads and then writes only its own entries, so the in-place update is race-free.
  for (int64_t j = lane; j < S; j += 32) p[j] = from_float<T>(expf(score(j) - max_score) * inv_sum);
}

// In place over ds [B·H·S, S] holding dP = dO·Vᵀ: dS = P ∘ (dP − Σ_j dP·P), the scores' gradient (unscaled).
template <class T>
__global__ void dense_softmax_backward_kernel(T* ds, const T* probs, int64_t rows, int64_t S) {
  const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  T* d = ds + row * S;
  const T* p = probs + row * S;
  float dot = 0.0f;
  for (int64_t j = lane; j < S; j += 32) dot += to_float(d[j]) * to_float(p[j]);
  dot = warp_sum(dot);
  for (int64_t j = lane; j < S; j += 32) d[j] = from_float<T>(to_float(p[j]) * (to_float(d[j]) - dot));
}

// dbias[e] += Σ_b ds[b·n + e] over e < n = H·S·S, the batch summed in order (deterministic, no atomics).
template <class T>
__global__ void bias_gradient_kernel(T* dbias, const T* ds, int64_t n, int64_t B) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    float acc = 0.0f;
    for (int64_t b = 0; b < B; ++b) acc += to_float(ds[b * n + e]);
    dbias[e] = from_float<T>(to_float(dbias[e]) + acc);
  }
}

}  // namespace

template <class T>
void attention_dense_forward(T* out, T* probs, const T* q, const T* k, const T* v, const T* bias,
                             const T* key_mask_add, int64_t B, int64_t S, int64_t n_head, int64_t head_dim,
                             float scale, cudaStream_t stream) {
  if (B == 0 || S == 0 || n_head == 0) return;
  const AttentionShape shape{B, S, n_head, head_dim};
  run_gemm(dense_scores_plan(shape), k, q, probs, scale, 0.0f, stream);
  const int64_t rows = B * n_head * S;
  dense_softmax_kernel<T><<<detail::grid_for_rows(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream>>>(
      probs, bias, key_mask_add, rows, S, n_head);
  cudaCheckLaunch();
  run_gemm(dense_output_plan(shape), v, probs, out, 1.0f, 0.0f, stream);
}

template <class T>
void attention_dense_backward(T* dq, T* dk, T* dv, T* dbias, T* scratch, const T* dout, const T* q, const T* k,
                              const T* v, const T* probs, int64_t B, int64_t S, int64_t n_head, int64_t head_dim,
                              float scale, cudaStream_t stream) {
  if (B == 0 || S == 0 || n_head == 0) return;
  const AttentionShape shape{B, S, n_head, head_dim};
  run_gemm(dense_dprobs_plan(shape), v, dout, scratch, 1.0f, 0.0f, stream);
  const int64_t rows = B * n_head * S;
  dense_softmax_backward_kernel<T><<<detail::grid_for_rows(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream>>>(
      scratch, probs, rows, S);
  cudaCheckLaunch();
  if (dq != nullptr) run_gemm(dense_dq_plan(shape), k, scratch, dq, scale, 0.0f, stream);
  if (dk != nullptr) run_gemm(dense_dkv_plan(shape), q, scratch, dk, scale, 0.0f, stream);
  if (dv != nullptr) run_gemm(dense_dkv_plan(shape), dout, probs, dv, 1.0f, 0.0f, stream);
  if (dbias != nullptr) {
    const int64_t n = n_head * S * S;
    bias_gradient_kernel<T><<<detail::grid_for(n, 256), 256, 0, stream>>>(dbias, scratch, n, B);
    cudaCheckLaunch();
  }
}

template void attention_dense_forward<float>(float*, float*, const float*, const float*, const float*, const float*,
                                             const float*, int64_t, int64_t, int64_t, int64_t, float, cudaStream_t);
template void attention_dense_forward<bf16>(bf16*, bf16*, const bf16*, const bf16*, const bf16*, const bf16*,
                                            const bf16*, int64_t, int64_t, int64_t, int64_t, float, cudaStream_t);
template void attention_dense_backward<float>(float*, float*, float*, float*, float*, const float*, const float*,
                                              const float*, const float*, const float*, int64_t, int64_t, int64_t,
                                              int64_t, float, cudaStream_t);
template void attention_dense_backward<bf16>(bf16*, bf16*, bf16*, bf16*, bf16*, const bf16*, const bf16*, const bf16*,
                                             const bf16*, const bf16*, int64_t, int64_t, int64_t, int64_t, float,
                                             cudaStream_t);

}  // namespace starflow::core::cuda
