// A feed-forward activation with an optional linear gate on the GPU: out = act(a) ⊙ gate (gate nullptr: act(a)).
// Same arguments as core/ops/cpu/gated_activation.h plus the stream; T float or bf16, arithmetic fp32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/ops/activation.h"

namespace starflow::core::cuda {

template <class T>
void gated_activation_forward(T* out, const T* a, const T* gate, int64_t n, Activation act, cudaStream_t stream = 0);

// da = dout ⊙ gate ⊙ act'(a), dgate = dout ⊙ act(a) (both =; each skipped when nullptr).
template <class T>
void gated_activation_backward(T* da, T* dgate, const T* dout, const T* a, const T* gate, int64_t n, Activation act,
                               cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
