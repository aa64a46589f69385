// Causal multi-head self-attention over one sequence ([text prefix; image tokens], one causal mask).
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

// qkv [B, S, 3C] with C = n_head·head_dim: q, k, v contiguous blocks of C, head-major inside each
// (feature = head·head_dim + i), RoPE already applied to q and k. Query s sees keys 0..s.
// out [B, S, C] (overwritten, heads concatenated head-major). probs [B, n_head, S, S]: the softmax
// probabilities saved for the backward pass (entries above the diagonal are written as 0).
template <class T>
void attention_forward(T* out, T* probs, const T* qkv, int64_t B, int64_t S, int64_t n_head, int64_t head_dim,
                       T scale);

// dqkv [B, S, 3C] (overwritten). scratch: at least B·n_head·S·S elements.
template <class T>
void attention_backward(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* probs, int64_t B, int64_t S,
                        int64_t n_head, int64_t head_dim, T scale);

}  // namespace starflow::core::cpu
