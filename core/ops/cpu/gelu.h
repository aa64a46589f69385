// Exact (erf) GELU: 0.5·x·(1 + erf(x/√2)).
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

template <class T>
void gelu_forward(T* out, const T* in, int64_t n);

// The same on the calling thread only (for callers already inside a parallel region); out may alias in.
// Lengths that are multiples of 8 take the vector erf for every element, as gelu_forward's blocks do.
template <class T>
void gelu_forward_serial(T* out, const T* in, int64_t n);

// din = dout · gelu'(in) (overwritten).
template <class T>
void gelu_backward(T* din, const T* dout, const T* in, int64_t n);

}  // namespace starflow::core::cpu
