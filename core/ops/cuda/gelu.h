// Exact (erf) GELU on the GPU: 0.5·x·(1 + erf(x/√2)), same arguments as core/ops/cpu/gelu.h plus the stream.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace starflow::core::cuda {

template <class T>
void gelu_forward(T* out, const T* in, int64_t n, cudaStream_t stream = 0);

// din = dout · gelu'(in) (overwritten).
template <class T>
void gelu_backward(T* din, const T* dout, const T* in, int64_t n, cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
