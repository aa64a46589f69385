// Embedding kernels: a gather for the forward pass; the backward pass walks the tokens in order per column, so a
// repeated id accumulates deterministically (accumulation is fp32 per step, stored in T after each token).
#include "core/ops/cuda/embedding.h"

#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/kernel_util.cuh"

namespace starflow::core::cuda {
namespace {

using detail::from_float;
using detail::to_float;

template <class T>
__global__ void embedding_forward_kernel(T* out, const int64_t* ids, const T* table, int64_t n, int64_t D) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n * D; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / D, j = e % D;
    out[e] = table[ids[i] * D + j];
  }
}

template <class T>
__global__ void embedding_backward_kernel(T* dtable, const T* dout, const int64_t* ids, int64_t n, int64_t D) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= D) return;
  for (int64_t i = 0; i < n; ++i) {
    T* dst = dtable + ids[i] * D + j;
    *dst = from_float<T>(to_float(*dst) + to_float(dout[i * D + j]));
  }
}

}  // namespace

template <class T>
void embedding_forward(T* out, const int64_t* ids, const T* table, int64_t n, int64_t D, cudaStream_t stream) {
  if (n == 0 || D == 0) return;
  embedding_forward_kernel<T><<<detail::grid_for(n * D, 256), 256, 0, stream>>>(out, ids, table, n, D);
  cudaCheckLaunch();
}

template <class T>
void embedding_backward(T* dtable, const T* dout, const int64_t* ids, int64_t n, int64_t D, cudaStream_t stream) {
  if (n == 0 || D == 0) return;
  embedding_backward_kernel<T><<<detail::grid_for(D, 128), 128, 0, stream>>>(dtable, dout, ids, n, D);
  cudaCheckLaunch();
}

template void embedding_forward<float>(float*, const int64_t*, const float*, int64_t, int64_t, cudaStream_t);
template void embedding_forward<bf16>(bf16*, const int64_t*, const bf16*, int64_t, int64_t, cudaStream_t);
template void embedding_backward<float>(float*, const float*, const int64_t*, int64_t, int64_t, cudaStream_t);
template void embedding_backward<bf16>(bf16*, const bf16*, const int64_t*, int64_t, int64_t, cudaStream_t);

}  // namespace starflow::core::cuda
