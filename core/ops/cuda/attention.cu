// Causal attention, the straightforward way: QKᵀ and P·V (and the four backward products) as cuBLAS
// strided-batched GEMMs over (batch, head) (plans in gemm_plan.h), with a causal softmax kernel between them
// that also zeroes the masked triangle. The full S×S scores are computed and stored, as the CPU op stores
// probs: O(S²) memory per head and twice the needed FLOPs.
// Later (issue 8): a fused flash-style kernel (or cuDNN's fused attention) that never materialises P and
// skips the masked blocks; the model then saves the row log-sum-exp instead of probs.
#include "core/ops/cuda/attention.h"

#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/gemm_plan.h"
#include "core/ops/cuda/kernel_util.cuh"

namespace starflow::core::cuda {
namespace {

using detail::from_float;
using detail::to_float;
using detail::warp_max;
using detail::warp_sum;

constexpr int kWarpsPerBlock = 8;

// In place over probs [B·H·S, S] holding raw scores q·k: row r is query i = r mod S, which sees keys 0..i.
// p = exp(scale·(s − max)) / Σ, computed from the raw scores in each pass so that bf16 storage rounds only
// the final probabilities (as the CPU op, the max of the raw scores is the max of the scaled ones: scale > 0).
template <class T>
__global__ void causal_softmax_kernel(T* probs, int64_t rows, int64_t S, float scale) {
  const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  T* p = probs + row * S;
  const int64_t n = row % S + 1;
  float max_score = -INFINITY;
  for (int64_t j = lane; j < n; j += 32) max_score = fmaxf(max_score, to_float(p[j]));
  max_score = warp_max(max_score);
  float sum = 0.0f;
  for (int64_t j = lane; j < n; j += 32) sum += expf(scale * (to_float(p[j]) - max_score));
  const float inv_sum = 1.0f / warp_sum(sum);
  // Each lane reads and then writes only its own entries, so the in-place update is race-free.
  for (int64_t j = lane; j < S; j += 32)
    p[j] = from_float<T>(j < n ? expf(scale * (to_float(p[j]) - max_score)) * inv_sum : 0.0f);
}

// In place over ds [B·H·S, S] holding dP = dO·Vᵀ: dS = scale · P ∘ (dP − Σ_j dP·P), 0 above the diagonal.
template <class T>
__global__ void causal_softmax_backward_kernel(T* ds, const T* probs, int64_t rows, int64_t S, float scale) {
  const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  T* d = ds + row * S;
  const T* p = probs + row * S;
  const int64_t n = row % S + 1;
  float dot = 0.0f;
  for (int64_t j = lane; j < n; j += 32) dot += to_float(d[j]) * to_float(p[j]);
  dot = warp_sum(dot);
  for (int64_t j = lane; j < S; j += 32)
    d[j] = from_float<T>(j < n ? scale * to_float(p[j]) * (to_float(d[j]) - dot) : 0.0f);
}

}  // namespace

template <class T>
void attention_forward(T* out, T* probs, const T* qkv, int64_t B, int64_t S, int64_t n_head, int64_t head_dim,
                       float scale, cudaStream_t stream) {
  if (B == 0 || S == 0 || n_head == 0) return;
  const AttentionShape shape{B, S, n_head, head_dim};
  run_gemm(attention_scores_plan(shape), qkv, qkv, probs, 1.0f, 0.0f, stream);
  const int64_t rows = B * n_head * S;
  causal_softmax_kernel<T><<<detail::grid_for_rows(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream>>>(
      probs, rows, S, scale);
  cudaCheckLaunch();
  run_gemm(attention_output_plan(shape), qkv, probs, out, 1.0f, 0.0f, stream);
}

template <class T>
void attention_backward(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* probs, int64_t B, int64_t S,
                        int64_t n_head, int64_t head_dim, float scale, cudaStream_t stream) {
  if (B == 0 || S == 0 || n_head == 0) return;
  const AttentionShape shape{B, S, n_head, head_dim};
  run_gemm(attention_dprobs_plan(shape), qkv, dout, scratch, 1.0f, 0.0f, stream);
  const int64_t rows = B * n_head * S;
  causal_softmax_backward_kernel<T><<<detail::grid_for_rows(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream>>>(
      scratch, probs, rows, S, scale);
  cudaCheckLaunch();
  run_gemm(attention_dq_plan(shape), qkv, scratch, dqkv, 1.0f, 0.0f, stream);
  run_gemm(attention_dk_plan(shape), qkv, scratch, dqkv, 1.0f, 0.0f, stream);
  run_gemm(attention_dv_plan(shape), dout, probs, dqkv, 1.0f, 0.0f, stream);
}

template void attention_forward<float>(float*, float*, const float*, int64_t, int64_t, int64_t, int64_t, float,
                                       cudaStream_t);
template void attention_forward<bf16>(bf16*, bf16*, const bf16*, int64_t, int64_t, int64_t, int64_t, float,
                                      cudaStream_t);
template void attention_backward<float>(float*, float*, const float*, const float*, const float*, int64_t, int64_t,
                                        int64_t, int64_t, float, cudaStream_t);
template void attention_backward<bf16>(bf16*, bf16*, const bf16*, const bf16*, const bf16*, int64_t, int64_t, int64_t,
                                       int64_t, float, cudaStream_t);

}  // namespace starflow::core::cuda
