// Gated activation kernels, elementwise, with the CPU twin's formulas (tanhf / erff in fp32).
#include "core/ops/cuda/gated_activation.h"

#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/kernel_util.cuh"

namespace starflow::core::cuda {
namespace {

using detail::from_float;
using detail::to_float;

constexpr float kSqrt2OverPi = 0.79788456080286535588f;
constexpr float kTanhCubic = 0.044715f;
constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

__device__ __forceinline__ float activate(float x, Activation act) {
  switch (act) {
    case Activation::kGeluTanh: return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + kTanhCubic * (x * x * x))));
    case Activation::kGeluErf: return 0.5f * x * (1.0f + erff(x * kInvSqrt2));
    case Activation::kRelu: return x > 0.0f ? x : 0.0f;
  }
  return x;
}

__device__ __forceinline__ float derivative(float x, Activation act) {
  switch (act) {
    case Activation::kGeluTanh: {
      const float t = tanhf(kSqrt2OverPi * (x + kTanhCubic * (x * x * x)));
      return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * kTanhCubic * x * x);
    }
    case Activation::kGeluErf:
      return 0.5f * (1.0f + erff(x * kInvSqrt2)) + x * kInvSqrt2Pi * expf(-0.5f * x * x);
    case Activation::kRelu: return x > 0.0f ? 1.0f : 0.0f;
  }
  return 1.0f;
}

template <class T>
__global__ void gated_activation_forward_kernel(T* out, const T* a, const T* gate, int64_t n, Activation act) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float y = activate(to_float(a[i]), act);
    out[i] = from_float<T>(gate != nullptr ? y * to_float(gate[i]) : y);
  }
}

template <class T>
__global__ void gated_activation_backward_kernel(T* da, T* dgate, const T* dout, const T* a, const T* gate, int64_t n,
                                                 Activation act) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = to_float(a[i]), dy = to_float(dout[i]);
    if (da != nullptr) da[i] = from_float<T>((gate != nullptr ? dy * to_float(gate[i]) : dy) * derivative(x, act));
    if (dgate != nullptr && gate != nullptr) dgate[i] = from_float<T>(dy * activate(x, act));
  }
}

}  // namespace

template <class T>
void gated_activation_forward(T* out, const T* a, const T* gate, int64_t n, Activation act, cudaStream_t stream) {
  if (n == 0) return;
  gated_activation_forward_kernel<T><<<detail::grid_for(n, 256), 256, 0, stream>>>(out, a, gate, n, act);
  cudaCheckLaunch();
}

template <class T>
void gated_activation_backward(T* da, T* dgate, const T* dout, const T* a, const T* gate, int64_t n, Activation act,
                               cudaStream_t stream) {
  if (n == 0) return;
  gated_activation_backward_kernel<T><<<detail::grid_for(n, 256), 256, 0, stream>>>(da, dgate, dout, a, gate, n, act);
  cudaCheckLaunch();
}

template void gated_activation_forward<float>(float*, const float*, const float*, int64_t, Activation, cudaStream_t);
template void gated_activation_forward<bf16>(bf16*, const bf16*, const bf16*, int64_t, Activation, cudaStream_t);
template void gated_activation_backward<float>(float*, float*, const float*, const float*, const float*, int64_t,
                                               Activation, cudaStream_t);
template void gated_activation_backward<bf16>(bf16*, bf16*, const bf16*, const bf16*, const bf16*, int64_t, Activation,
                                              cudaStream_t);

}  // namespace starflow::core::cuda
