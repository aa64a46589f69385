// RMSNorm with unit offset (STARFlow's final_norm): out = in / sqrt(mean(in²) + eps) · (1 + g).
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

// in/out [rows, C]; g [C] (the offset, zero-initialised); rrms [rows] = 1/sqrt(mean(in²)+eps) saved.
template <class T>
void rmsnorm_forward(T* out, T* rrms, const T* in, const T* g, int64_t rows, int64_t C, T eps);

// Writes din (=, or += when accumulate_din); accumulates dg (+=).
template <class T>
void rmsnorm_backward(T* din, T* dg, const T* dout, const T* in, const T* rrms, const T* g, int64_t rows,
                      int64_t C, bool accumulate_din = false);

}  // namespace starflow::core::cpu
