// RMSNorm with unit offset (STARFlow's final_norm) on the GPU: out = in / sqrt(mean(in²) + eps) · (1 + g).
// Same arguments as core/ops/cpu/rmsnorm.h plus the stream; T float or bf16, statistics and arithmetic fp32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace starflow::core::cuda {

// in/out [rows, C]; g [C]; rrms [rows] = 1/sqrt(mean(in²)+eps) saved for the backward pass.
template <class T>
void rmsnorm_forward(T* out, float* rrms, const T* in, const T* g, int64_t rows, int64_t C, float eps,
                     cudaStream_t stream = 0);

// Writes din (=, or += when accumulate_din; skipped when nullptr); accumulates dg (+=, skipped when nullptr).
template <class T>
void rmsnorm_backward(T* din, T* dg, const T* dout, const T* in, const float* rrms, const T* g, int64_t rows,
                      int64_t C, bool accumulate_din = false, cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
