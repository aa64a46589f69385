// Linear layer on the GPU, PyTorch convention (weight [N, K], out = in·Wᵀ + b): cuBLASLt GEMMs with the bias
// fused as an epilogue. Same arguments as core/ops/cpu/linear.h plus the stream; T is float or bf16
// (storage), accumulation is always fp32 (fp32 data runs true fp32, not TF32).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace starflow::core::cuda {

// in [M, K], weight [N, K], bias [N] or nullptr, out [M, N] (overwritten).
template <class T>
void linear_forward(T* out, const T* in, const T* weight, const T* bias, int64_t M, int64_t K, int64_t N,
                    cudaStream_t stream = 0);

// dout [M, N]. Accumulates dweight and dbias (+=, each skipped when nullptr); writes din [M, K] (=), or
// accumulates into it when accumulate_din (skipped when din is nullptr).
template <class T>
void linear_backward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight, int64_t M, int64_t K,
                     int64_t N, bool accumulate_din = false, cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
