// Cached attention for decoding: an append kernel (the chunk's k and v into the cache), then one block per
// (query, head, batch) that keeps the query and its scores in shared memory: scores by one warp per key
// (lanes split the head dimension, coalesced), a block-wide softmax, and the output by one thread per head
// dimension. Decoding is bound by reading the cache and by launches; later (issue 9): split-K over the cache
// for long sequences, the whole token step fused and captured in a CUDA graph.
#include "core/ops/cuda/attention_cached.h"

#include <stdexcept>
#include <string>

#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/kernel_util.cuh"

namespace starflow::core::cuda {
namespace {

using detail::from_float;
using detail::to_float;
using detail::warp_sum;

constexpr int kThreads = 128;

// cache[b, h, start + i, d] ← the k and v parts of qkv row (b, i): rows are [q (Hq heads) | k (H) | v (H)].
template <class T>
__global__ void append_kv_kernel(T* cache_k, T* cache_v, const T* qkv, int64_t B, int64_t n, int64_t H, int64_t dh,
                                 int64_t capacity, int64_t start, int64_t Hq) {
  const int64_t C = H * dh, Q = Hq * dh, total = B * n * H * dh;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t d = idx % dh;
    int64_t rest = idx / dh;
    const int64_t h = rest % H;
    rest /= H;
    const int64_t i = rest % n;
    const int64_t b = rest / n;
    const T* row = qkv + (b * n + i) * (Q + 2 * C) + h * dh + d;
    const int64_t dst = ((b * H + h) * capacity + start + i) * dh + d;
    cache_k[dst] = row[Q];
    cache_v[dst] = row[Q + C];
  }
}

// Block (i, hq, b): query i of the chunk, query head hq (reading KV head hq / (Hq / H)), batch b. Shared memory:
// dh query values (pre-scaled), then one score per visible key.
template <class T>
__global__ void attend_cache_kernel(T* out, const T* qkv, const T* cache_k, const T* cache_v, int64_t n, int64_t H,
                                    int64_t dh, int64_t capacity, int64_t start, float scale, int64_t Hq) {
  extern __shared__ float shared[];
  const int64_t i = blockIdx.x, hq = blockIdx.y, b = blockIdx.z, h = hq / (Hq / H);
  const int64_t Q = Hq * dh, keys = start + i + 1;
  float* q = shared;
  float* scores = shared + dh;
  const T* q_src = qkv + (b * n + i) * (Q + 2 * H * dh) + hq * dh;
  for (int64_t d = threadIdx.x; d < dh; d += blockDim.x) q[d] = to_float(q_src[d]) * scale;
  __syncthreads();

  const T* K = cache_k + (b * H + h) * capacity * dh;
  const T* V = cache_v + (b * H + h) * capacity * dh;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int64_t j = warp; j < keys; j += warps) {
    float dot = 0.0f;
    for (int64_t d = lane; d < dh; d += 32) dot += q[d] * to_float(K[j * dh + d]);
    dot = warp_sum(dot);
    if (lane == 0) scores[j] = dot;
  }
  __syncthreads();

  float max_score = -INFINITY;
  for (int64_t j = threadIdx.x; j < keys; j += blockDim.x) max_score = fmaxf(max_score, scores[j]);
  max_score = detail::block_max(max_score);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < keys; j += blockDim.x) {
    const float e = expf(scores[j] - max_score);
    scores[j] = e;
    sum += e;
  }
  const float inv_sum = 1.0f / detail::block_sum(sum);  // its barriers also publish the exponentials
  __syncthreads();

  T* o = out + (b * n + i) * Q + hq * dh;
  for (int64_t d = threadIdx.x; d < dh; d += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < keys; ++j) acc += scores[j] * to_float(V[j * dh + d]);
    o[d] = from_float<T>(acc * inv_sum);
  }
}

}  // namespace

template <class T>
void attention_cached_forward(T* out, DeviceKVCache<T>& cache, const T* qkv, int64_t B, int64_t n, int64_t start,
                              float scale, int64_t q_heads, cudaStream_t stream) {
  const int64_t H = cache.n_head, dh = cache.head_dim, cap = cache.capacity, Hq = q_heads > 0 ? q_heads : H;
  if (Hq % H != 0)
    throw std::invalid_argument("attention_cached_forward: " + std::to_string(Hq) + " query heads are not a multiple of " +
                                std::to_string(H) + " KV heads");
  if (start < 0 || start + n > cap || B > cache.batch)
    throw std::out_of_range("attention_cached_forward: positions [" + std::to_string(start) + ", " +
                            std::to_string(start + n) + ") of batch " + std::to_string(B) + " do not fit a cache of " +
                            std::to_string(cap) + " positions and batch " + std::to_string(cache.batch));
  if (B == 0 || n == 0 || H == 0) return;
  if (Hq > 65535 || B > 65535) throw std::invalid_argument("attention_cached_forward: more than 65535 heads or batch rows");
  append_kv_kernel<T><<<detail::grid_for(B * n * H * dh, 256), 256, 0, stream>>>(cache.k.data(), cache.v.data(), qkv,
                                                                                 B, n, H, dh, cap, start, Hq);
  cudaCheckLaunch();

  const size_t shared_bytes = static_cast<size_t>(dh + start + n) * sizeof(float);
  if (shared_bytes > 48 * 1024) {
    int device = 0, limit = 0;
    cudaCheck(cudaGetDevice(&device));
    cudaCheck(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    if (shared_bytes > static_cast<size_t>(limit))
      throw std::invalid_argument("attention_cached_forward: " + std::to_string(start + n) +
                                  " cached positions need more shared memory than a block has");
    cudaCheck(cudaFuncSetAttribute(attend_cache_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   static_cast<int>(shared_bytes)));
  }
  const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>(Hq), static_cast<unsigned>(B));
  attend_cache_kernel<T><<<grid, kThreads, shared_bytes, stream>>>(out, qkv, cache.k.data(), cache.v.data(), n, H, dh,
                                                                   cap, start, scale, Hq);
  cudaCheckLaunch();
}

template void attention_cached_forward<float>(float*, DeviceKVCache<float>&, const float*, int64_t, int64_t, int64_t,
                                              float, int64_t, cudaStream_t);
template void attention_cached_forward<bf16>(bf16*, DeviceKVCache<bf16>&, const bf16*, int64_t, int64_t, int64_t,
                                             float, int64_t, cudaStream_t);

}  // namespace starflow::core::cuda
