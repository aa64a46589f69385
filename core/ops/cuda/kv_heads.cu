// GQA head repetition kernels: one thread per output element (expand) or per input element (reduce, which sums
// its group in a fixed order: deterministic).
#include "core/ops/cuda/kv_heads.h"

#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/kernel_util.cuh"

namespace starflow::core::cuda {
namespace {

using detail::from_float;
using detail::to_float;

template <class T>
__global__ void expand_kernel(T* out, const T* in, int64_t rows, int64_t Hq, int64_t Hkv, int64_t dh) {
  const int64_t Q = Hq * dh, KV = Hkv * dh, g = Hq / Hkv, total = rows * 3 * Q;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / (3 * Q), f = e % (3 * Q), part = f / Q, h = (f % Q) / dh, d = f % dh;
    const T* src = in + r * (Q + 2 * KV);
    out[e] = part == 0 ? src[f] : src[Q + (part - 1) * KV + (h / g) * dh + d];
  }
}

template <class T>
__global__ void reduce_kernel(T* din, const T* dout, int64_t rows, int64_t Hq, int64_t Hkv, int64_t dh) {
  const int64_t Q = Hq * dh, KV = Hkv * dh, g = Hq / Hkv, width = Q + 2 * KV, total = rows * width;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / width, f = e % width;
    const T* src = dout + r * 3 * Q;
    if (f < Q) {
      din[e] = src[f];
      continue;
    }
    const int64_t part = (f - Q) / KV + 1, j = ((f - Q) % KV) / dh, d = f % dh;
    float sum = 0.0f;
    for (int64_t h = j * g; h < (j + 1) * g; ++h) sum += to_float(src[part * Q + h * dh + d]);
    din[e] = from_float<T>(sum);
  }
}

}  // namespace

template <class T>
void expand_kv_heads(T* out, const T* in, int64_t rows, int64_t q_heads, int64_t kv_heads, int64_t head_dim,
                     cudaStream_t stream) {
  const int64_t total = rows * 3 * q_heads * head_dim;
  if (total <= 0) return;
  expand_kernel<T><<<detail::grid_for(total, 256), 256, 0, stream>>>(out, in, rows, q_heads, kv_heads, head_dim);
  cudaCheckLaunch();
}

template <class T>
void reduce_kv_heads(T* din, const T* dout, int64_t rows, int64_t q_heads, int64_t kv_heads, int64_t head_dim,
                     cudaStream_t stream) {
  const int64_t total = rows * (q_heads + 2 * kv_heads) * head_dim;
  if (total <= 0) return;
  reduce_kernel<T><<<detail::grid_for(total, 256), 256, 0, stream>>>(din, dout, rows, q_heads, kv_heads, head_dim);
  cudaCheckLaunch();
}

template void expand_kv_heads<float>(float*, const float*, int64_t, int64_t, int64_t, int64_t, cudaStream_t);
template void expand_kv_heads<bf16>(bf16*, const bf16*, int64_t, int64_t, int64_t, int64_t, cudaStream_t);
template void reduce_kv_heads<float>(float*, const float*, int64_t, int64_t, int64_t, int64_t, cudaStream_t);
template void reduce_kv_heads<bf16>(bf16*, const bf16*, int64_t, int64_t, int64_t, int64_t, cudaStream_t);

}  // namespace starflow::core::cuda
