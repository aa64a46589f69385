// Embedding lookup on the GPU: out[i] = table[ids[i]]. Same arguments as core/ops/cpu/embedding.h plus the
// stream; T float or bf16; ids in device memory, each in range (the caller checks on the host).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace starflow::core::cuda {

template <class T>
void embedding_forward(T* out, const int64_t* ids, const T* table, int64_t n, int64_t D, cudaStream_t stream = 0);

// dtable [V, D] += dout[i] at row ids[i], repeated ids summed in token order (one thread per column: no atomics,
// the CPU's order, the same bits on every run).
template <class T>
void embedding_backward(T* dtable, const T* dout, const int64_t* ids, int64_t n, int64_t D, cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
