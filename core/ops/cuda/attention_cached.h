// Causal attention of a chunk of new positions against a per-layer KV cache on the GPU (sampling): the
// chunk's keys and values are appended to the cache, then query i of the chunk (absolute position start + i)
// attends to keys 0..start+i. Same contract as core/ops/cpu/attention_cached.h plus the stream.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/ops/cuda/device_buffer.h"

namespace starflow::core::cuda {

// Keys and values of one layer, both [B, n_head, capacity, head_dim] (by heads: one (batch, head)'s cache is
// one contiguous block, each key a contiguous head vector): the CPU cache's layout.
template <class T>
struct DeviceKVCache {
  int64_t batch = 0, n_head = 0, head_dim = 0, capacity = 0;
  DeviceBuffer<T> k, v;
  // Sizes the cache (reallocating only when the element count changes) and zeroes it.
  void reset(int64_t B, int64_t heads, int64_t dh, int64_t cap, cudaStream_t stream = 0) {
    batch = B, n_head = heads, head_dim = dh, capacity = cap;
    const size_t count = static_cast<size_t>(B * heads * cap * dh);
    if (k.size() != count) {
      k.allocate(count);
      v.allocate(count);
    }
    k.zero(stream);
    v.zero(stream);
  }
};

// qkv [B, n, (Hq + 2·H)·dh] of the n new positions (RoPE applied to q and k), with Hq = q_heads query heads
// (0: as many as the cache's H KV heads; query head h reads KV head h / (Hq / H), grouped-query attention).
// out [B, n, Hq·dh] (overwritten). Throws when start + n exceeds the capacity or B the cache's batch.
template <class T>
void attention_cached_forward(T* out, DeviceKVCache<T>& cache, const T* qkv, int64_t B, int64_t n, int64_t start,
                              float scale, int64_t q_heads = 0, cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
