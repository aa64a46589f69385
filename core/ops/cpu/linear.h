// Linear layer, PyTorch convention: weight [N, K] (out, in), out = in·Wᵀ + b.
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

// in [M, K], weight [N, K], bias [N] or nullptr, out [M, N] (overwritten).
template <class T>
void linear_forward(T* out, const T* in, const T* weight, const T* bias, int64_t M, int64_t K, int64_t N);

// dout [M, N]. Accumulates dweight and dbias (+=, each skipped when nullptr); writes din [M, K] (=),
// or accumulates into it when accumulate_din (skipped when din is nullptr).
template <class T>
void linear_backward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight, int64_t M,
                     int64_t K, int64_t N, bool accumulate_din = false);

}  // namespace starflow::core::cpu
