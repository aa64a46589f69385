// Token layout ops on the GPU: patchify/unpatchify (feature order (p_row, p_col, channel)) and the block
// permutation (identity or flip of the token axis). Same arguments as core/ops/cpu/tokens.h plus the stream.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace starflow::core::cuda {

// in [B, C, H, W] → out [B, H/p, W/p, p·p·C] with feature f = (i·p + j)·C + c.
template <class T>
void patchify(T* out, const T* in, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p, cudaStream_t stream = 0);

// The exact inverse of patchify.
template <class T>
void unpatchify(T* out, const T* in, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p, cudaStream_t stream = 0);

// out[b, t] = in[b, flip ? T−1−t : t] for tokens of D features; its own inverse and backward. No aliasing.
template <class T>
void permute_tokens(T* out, const T* in, int64_t B, int64_t T_, int64_t D, bool flip, cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
