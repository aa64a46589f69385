// Small elementwise utilities on the GPU: the residual add (the CPU model does it inline) and conversions
// between fp32 and bf16 (master weights to compute weights, activations for inspection and tests).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace starflow::core::cuda {

// out = a + b over n elements (out may alias a or b).
template <class T>
void add(T* out, const T* a, const T* b, int64_t n, cudaStream_t stream = 0);

// x = min(max(x, lo), hi) over n elements, in fp32 (the VAE posterior's log-variance clamp); NaN stays NaN.
template <class T>
void clamp(T* x, float lo, float hi, int64_t n, cudaStream_t stream = 0);

// out = in converted (round to nearest even into bf16).
void convert(__nv_bfloat16* out, const float* in, int64_t n, cudaStream_t stream = 0);
void convert(float* out, const __nv_bfloat16* in, int64_t n, cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
