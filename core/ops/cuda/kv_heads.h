// Grouped-query attention's head repetition on the GPU (core/ops/cpu/kv_heads.h: the same arguments plus the
// stream).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace starflow::core::cuda {

// in [rows, (Hq + 2·Hkv)·dh] → out [rows, 3·Hq·dh], KV head j repeated for query heads j·g .. j·g + g − 1.
template <class T>
void expand_kv_heads(T* out, const T* in, int64_t rows, int64_t q_heads, int64_t kv_heads, int64_t head_dim,
                     cudaStream_t stream = 0);
// The backward: dq copied, dk and dv of KV head j summed over its query heads (=).
template <class T>
void reduce_kv_heads(T* din, const T* dout, int64_t rows, int64_t q_heads, int64_t kv_heads, int64_t head_dim,
                     cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
