// Grouped-query attention's head repetition (the official `repeat_interleave` of k and v): a qkv buffer with
// fewer KV heads than query heads expanded to the full layout the attention ops take, and its backward, which
// sums the gradients of the query heads that share a KV head.
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

// in [rows, (Hq + 2·Hkv)·dh] = [q | k | v] → out [rows, 3·Hq·dh] with k and v head j repeated for query heads
// j·g .. j·g + g − 1 (g = Hq / Hkv).
template <class T>
void expand_kv_heads(T* out, const T* in, int64_t rows, int64_t q_heads, int64_t kv_heads, int64_t head_dim);

// The backward: dq copied, dk and dv of KV head j = Σ over its g query heads (=, not +=).
template <class T>
void reduce_kv_heads(T* din, const T* dout, int64_t rows, int64_t q_heads, int64_t kv_heads, int64_t head_dim);

}  // namespace starflow::core::cpu
