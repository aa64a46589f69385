// Exact GELU kernels (erff, not the tanh approximation, which misses the golden tolerances), written with
// the CPU twin's formula so both round alike. Later: fuse into the fc1 GEMM's epilogue (cuBLASLt GELU_AUX).
#include "core/ops/cuda/gelu.h"

#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/kernel_util.cuh"

namespace starflow::core::cuda {
namespace {

using detail::from_float;
using detail::to_float;

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;  // 1/√(2π)

template <class T>
__global__ void gelu_forward_kernel(T* out, const T* in, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = to_float(in[i]);
    out[i] = from_float<T>(0.5f * x * (1.0f + erff(x * kInvSqrt2)));
  }
}

// gelu'(x) = Φ(x) + x·φ(x).
template <class T>
__global__ void gelu_backward_kernel(T* din, const T* dout, const T* in, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = to_float(in[i]);
    const float cdf = 0.5f * (1.0f + erff(x * kInvSqrt2));
    const float pdf = kInvSqrt2Pi * expf(-0.5f * x * x);
    din[i] = from_float<T>(to_float(dout[i]) * (cdf + x * pdf));
  }
}

}  // namespace

template <class T>
void gelu_forward(T* out, const T* in, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  gelu_forward_kernel<T><<<detail::grid_for(n, 256), 256, 0, stream>>>(out, in, n);
  cudaCheckLaunch();
}

template <class T>
void gelu_backward(T* din, const T* dout, const T* in, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  gelu_backward_kernel<T><<<detail::grid_for(n, 256), 256, 0, stream>>>(din, dout, in, n);
  cudaCheckLaunch();
}

template void gelu_forward<float>(float*, const float*, int64_t, cudaStream_t);
template void gelu_forward<bf16>(bf16*, const bf16*, int64_t, cudaStream_t);
template void gelu_backward<float>(float*, const float*, const float*, int64_t, cudaStream_t);
template void gelu_backward<bf16>(bf16*, const bf16*, const bf16*, int64_t, cudaStream_t);

}  // namespace starflow::core::cuda
