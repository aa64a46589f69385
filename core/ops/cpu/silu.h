// SiLU (swish): x·σ(x), the autoencoder's activation.
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

// out may alias in (each element is read before it is written).
template <class T>
void silu_forward(T* out, const T* in, int64_t n);

// din = dout · silu'(in) (overwritten).
template <class T>
void silu_backward(T* din, const T* dout, const T* in, int64_t n);

}  // namespace starflow::core::cpu
