// Elementwise transcendental functions over arrays, vectorised through glibc's libmvec (the file is built
// with -ffast-math, the only way glibc exposes the vector variants; see CMakeLists.txt).
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

// x[i] ← exp(scale·(x[i] − shift)); returns Σ of the results (accumulated in T). Softmax's inner loop.
template <class T>
T exp_shifted_sum(T* x, int64_t n, T scale, T shift);

}  // namespace starflow::core::cpu
