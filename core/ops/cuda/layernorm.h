// LayerNorm over the last dimension on the GPU (biased variance, two-pass), same arguments as
// core/ops/cpu/layernorm.h plus the stream. T (float or bf16) is the storage of activations and parameters;
// the saved statistics and all arithmetic are fp32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace starflow::core::cuda {

// in/out [rows, C]; gamma, beta [C]; mean, rstd [rows] are written for the backward pass.
template <class T>
void layernorm_forward(T* out, float* mean, float* rstd, const T* in, const T* gamma, const T* beta, int64_t rows,
                       int64_t C, float eps, cudaStream_t stream = 0);

// Writes din [rows, C] (=, or += when accumulate_din; skipped when nullptr); accumulates dgamma, dbeta (+=,
// skipped when either is nullptr, as on the CPU).
template <class T>
void layernorm_backward(T* din, T* dgamma, T* dbeta, const T* dout, const T* in, const float* mean, const float* rstd,
                        const T* gamma, int64_t rows, int64_t C, bool accumulate_din = false,
                        cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
