// Causal attention of a chunk of new positions against a per-layer KV cache (sampling, spec §2.5-2.6):
// the chunk's keys and values are written into the cache, then query i of the chunk (absolute position
// start + i) attends to keys 0..start+i ("bottom-right aligned" causal mask).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace starflow::core::cpu {

// Keys and values of one layer. Keys are stored transposed, [B, n_head, head_dim, capacity], so a query's
// scores against all cached keys are one vectorised axpy per head dimension (no horizontal sums); values
// are [B, n_head, capacity, head_dim], so the output is one axpy per key.
template <class T>
struct KVCache {
  int64_t batch = 0, n_head = 0, head_dim = 0, capacity = 0;
  std::vector<T> k, v;
  void reset(int64_t B, int64_t heads, int64_t dh, int64_t cap) {
    batch = B, n_head = heads, head_dim = dh, capacity = cap;
    k.assign(static_cast<size_t>(B * heads * cap * dh), T(0));
    v.assign(k.size(), T(0));
  }
};

// qkv [B, n, 3C] of the n new positions (RoPE applied to q and k). out [B, n, C] (overwritten).
template <class T>
void attention_cached_forward(T* out, KVCache<T>& cache, const T* qkv, int64_t B, int64_t n, int64_t start, T scale);

}  // namespace starflow::core::cpu
