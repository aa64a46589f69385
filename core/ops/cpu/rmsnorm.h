// RMSNorm with unit offset (STARFlow's final_norm): out = in / sqrt(mean(in²) + eps) · (1 + g).
#pragma once
#include <cstdint>

#include "core/build_config.h"
#include "core/ops/cpu/linear_small_batch.h"

namespace starflow::core::cpu {

// in/out [rows, C]; g [C] (the offset, zero-initialised); rrms [rows] = 1/sqrt(mean(in²)+eps) saved.
template <class T>
void rmsnorm_forward(T* out, T* rrms, const T* in, const T* g, int64_t rows, int64_t C, T eps);

#ifdef STARFLOW_SMALL_BATCH_KERNEL
// The decode step's form (team op, see linear_small_batch.h): the RMSNorm of in [M, C] written transposed
// into xt [C, Mp], the next small-batch linear's input, with the same values as rmsnorm_forward.
void rmsnorm_transposed_team(float* xt, float* rrms, const float* in, const float* g, int64_t M, int64_t C,
                             float eps);
#endif

// Writes din (=, or += when accumulate_din); accumulates dg (+=).
template <class T>
void rmsnorm_backward(T* din, T* dg, const T* dout, const T* in, const T* rrms, const T* g, int64_t rows,
                      int64_t C, bool accumulate_din = false);

}  // namespace starflow::core::cpu
