// Causal multi-head self-attention on the GPU over one sequence ([text prefix; image tokens], one causal
// mask). Same arguments and buffers as core/ops/cpu/attention.h plus the stream; T float or bf16.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace starflow::core::cuda {

// qkv [B, S, 3C] with C = n_head·head_dim (q, k, v blocks of C, head-major inside each), RoPE already applied.
// Query s sees keys 0..s. out [B, S, C] (overwritten). probs [B, n_head, S, S]: the softmax probabilities
// saved for the backward pass, 0 above the diagonal.
template <class T>
void attention_forward(T* out, T* probs, const T* qkv, int64_t B, int64_t S, int64_t n_head, int64_t head_dim,
                       float scale, cudaStream_t stream = 0);

// dqkv [B, S, 3C] (overwritten). scratch: at least B·n_head·S·S elements.
template <class T>
void attention_backward(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* probs, int64_t B, int64_t S,
                        int64_t n_head, int64_t head_dim, float scale, cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
