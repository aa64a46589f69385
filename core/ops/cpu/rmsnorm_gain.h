// RMSNorm with a plain gain (T5LayerNorm): out = w ⊙ (in / sqrt(mean(in²) + eps)); no mean subtraction, no bias.
// rmsnorm.h is STARFlow's variant, whose parameter is an offset (1 + g): a T5 gain passed there as w − 1 would
// round for gains far from 1, so the two are separate ops.
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

// in/out [rows, C]; w [C]; rrms [rows] = 1/sqrt(mean(in²)+eps) saved (the mean square accumulated in double).
template <class T>
void rmsnorm_gain_forward(T* out, T* rrms, const T* in, const T* w, int64_t rows, int64_t C, T eps);

// Writes din (=, or += when accumulate_din; skipped when nullptr); accumulates dw (+=; skipped when nullptr).
template <class T>
void rmsnorm_gain_backward(T* din, T* dw, const T* dout, const T* in, const T* rrms, const T* w, int64_t rows,
                           int64_t C, bool accumulate_din = false);

}  // namespace starflow::core::cpu
