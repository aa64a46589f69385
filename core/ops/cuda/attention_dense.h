// Dense (bidirectional) multi-head attention on the GPU: the SD VAE's mid-block attention and the T5 encoder's
// self-attention. Same arguments and buffers as core/ops/cpu/attention_dense.h plus the stream; T float or bf16.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace starflow::core::cuda {

// q, k, v, out [B, S, H·dh]; bias [H, S, S] and key_mask_add [B, S] optional (nullptr: none); probs [B, H, S, S]
// = softmax_j(scale·q·k + bias + key_mask_add), saved for backward.
template <class T>
void attention_dense_forward(T* out, T* probs, const T* q, const T* k, const T* v, const T* bias,
                             const T* key_mask_add, int64_t B, int64_t S, int64_t n_head, int64_t head_dim,
                             float scale, cudaStream_t stream = 0);

// dq, dk, dv (=; each skipped when nullptr), dbias (+=, summed over the batch; skipped when nullptr). scratch:
// at least B·H·S·S elements.
template <class T>
void attention_dense_backward(T* dq, T* dk, T* dv, T* dbias, T* scratch, const T* dout, const T* q, const T* k,
                              const T* v, const T* probs, int64_t B, int64_t S, int64_t n_head, int64_t head_dim,
                              float scale, cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
