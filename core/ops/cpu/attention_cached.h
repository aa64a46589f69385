// Causal attention of a chunk of new positions against a per-layer KV cache (sampling, spec §2.5-2.6):
// the chunk's keys and values are written into the cache, then query i of the chunk (absolute position
// start + i) attends to keys 0..start+i ("bottom-right aligned" causal mask).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/build_config.h"
#include "core/ops/cpu/linear_small_batch.h"
#include "core/ops/cpu/rope.h"

namespace starflow::core::cpu {

// Keys and values of one layer, both [B, n_head, capacity, head_dim]: a new position's key and value are
// one contiguous row each, and a query reads exactly the rows of the keys it attends to (a score is a dot
// product over a contiguous row, the output one axpy per value row), which is what bounds a decode step's
// attention: the cache's bytes, not its arithmetic.
template <class T>
struct KVCache {
  int64_t batch = 0, n_head = 0, head_dim = 0, capacity = 0;
  std::vector<T> k, v;
  // Sizes the cache for a new sequence, keeping the memory it already has: every position is written
  // before a query reads it, so the old contents need no clearing.
  void reset(int64_t B, int64_t heads, int64_t dh, int64_t cap) {
    batch = B, n_head = heads, head_dim = dh, capacity = cap;
    const size_t n = static_cast<size_t>(B * heads * cap * dh);
    if (k.size() < n) k.resize(n), v.resize(n);
  }
};

// Grouped-query attention: the cache holds the n_head KV heads; qkv rows are [q | k | v] with q_heads query
// heads (q_heads 0: as many as KV heads) and n_head key and value heads, each head_dim wide, so a row is
// (q_heads + 2·n_head)·head_dim. Query head h reads KV head h / (q_heads / n_head), as repeat_interleave does.

// Writes the keys and values of n new positions (qkv [B, n, row], RoPE applied to k) into the cache at
// positions start..start+n−1, without attending: positions whose outputs nobody reads (the text prefix in
// a block's last layer) only need to be keys and values.
template <class T>
void attention_cached_store(KVCache<T>& cache, const T* qkv, int64_t B, int64_t n, int64_t start, int64_t q_heads = 0);

// qkv [B, n, row] of the n new positions (RoPE applied to q and k). out [B, n, q_heads·head_dim] (overwritten).
template <class T>
void attention_cached_forward(T* out, KVCache<T>& cache, const T* qkv, int64_t B, int64_t n, int64_t start, T scale,
                              int64_t q_heads = 0);

#ifdef STARFLOW_SMALL_BATCH_KERNEL
// The decode step's fused form (float, team op, see linear_small_batch.h): qkv [B, n, row] (as above, q_heads
// query heads) arrives with q and k not yet rotated; each (KV head, sample) rotates its k and its query heads'
// q with RoPE table rows start..start+n−1 (in place, in the table's pair layout), stores k and v in the cache
// and attends; the output goes transposed into out_t [q_heads·head_dim, Mp] (column b·n + i,
// Mp = small_batch_padded_rows(B·n)): the projection's small-batch input. head_dim % 8 == 0.
void attention_cached_team(float* out_t, KVCache<float>& cache, float* qkv, int64_t B, int64_t n, int64_t start,
                           float scale, const RopeTable<float>& rope, int64_t q_heads = 0);
#endif

}  // namespace starflow::core::cpu
