// LayerNorm over the last dimension (biased variance), with the saved statistics its backward needs.
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

// in/out [rows, C]; gamma, beta [C]; mean, rstd [rows] are written for the backward pass.
template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* in, const T* gamma, const T* beta, int64_t rows,
                       int64_t C, T eps);

// Writes din [rows, C] (=, or += when accumulate_din); accumulates dgamma, dbeta (+=).
template <class T>
void layernorm_backward(T* din, T* dgamma, T* dbeta, const T* dout, const T* in, const T* mean, const T* rstd,
                        const T* gamma, int64_t rows, int64_t C, bool accumulate_din = false);

}  // namespace starflow::core::cpu
