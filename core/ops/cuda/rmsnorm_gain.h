// T5's RMSNorm (a plain gain) on the GPU: out = w ⊙ (in / sqrt(mean(in²) + eps)). Same arguments as
// core/ops/cpu/rmsnorm_gain.h plus the stream; T float or bf16, statistics and arithmetic fp32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace starflow::core::cuda {

// in/out [rows, C]; w [C]; rrms [rows] = 1/sqrt(mean(in²)+eps) saved for the backward pass.
template <class T>
void rmsnorm_gain_forward(T* out, float* rrms, const T* in, const T* w, int64_t rows, int64_t C, float eps,
                          cudaStream_t stream = 0);

// Writes din (=, or += when accumulate_din; skipped when nullptr); accumulates dw (+=, skipped when nullptr).
template <class T>
void rmsnorm_gain_backward(T* din, T* dw, const T* dout, const T* in, const float* rrms, const T* w, int64_t rows,
                           int64_t C, bool accumulate_din = false, cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
