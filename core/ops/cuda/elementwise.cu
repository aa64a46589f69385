// Elementwise kernels: grid-stride loops, fp32 arithmetic.
#include "core/ops/cuda/elementwise.h"

#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/kernel_util.cuh"

namespace starflow::core::cuda {
namespace {

using detail::from_float;
using detail::to_float;

template <class T>
__global__ void add_kernel(T* out, const T* a, const T* b, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
}

template <class T>
__global__ void clamp_kernel(T* x, float lo, float hi, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float v = to_float(x[i]);
    // Comparisons rather than fminf/fmaxf, which would turn a NaN into a bound (torch.clamp keeps NaN).
    x[i] = from_float<T>(v < lo ? lo : (v > hi ? hi : v));
  }
}

template <class Out, class In>
__global__ void convert_kernel(Out* out, const In* in, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_float<Out>(to_float(in[i]));
}

}  // namespace

template <class T>
void add(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<T><<<detail::grid_for(n, 256), 256, 0, stream>>>(out, a, b, n);
  cudaCheckLaunch();
}

template <class T>
void clamp(T* x, float lo, float hi, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  clamp_kernel<T><<<detail::grid_for(n, 256), 256, 0, stream>>>(x, lo, hi, n);
  cudaCheckLaunch();
}

void convert(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  convert_kernel<<<detail::grid_for(n, 256), 256, 0, stream>>>(out, in, n);
  cudaCheckLaunch();
}

void convert(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  convert_kernel<<<detail::grid_for(n, 256), 256, 0, stream>>>(out, in, n);
  cudaCheckLaunch();
}

template void add<float>(float*, const float*, const float*, int64_t, cudaStream_t);
template void add<bf16>(bf16*, const bf16*, const bf16*, int64_t, cudaStream_t);
template void clamp<float>(float*, float, float, int64_t, cudaStream_t);
template void clamp<bf16>(bf16*, float, float, int64_t, cudaStream_t);

}  // namespace starflow::core::cuda
