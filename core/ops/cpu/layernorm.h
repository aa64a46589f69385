// LayerNorm over the last dimension (biased variance), with the saved statistics its backward needs.
#pragma once
#include <cstdint>

#include "core/build_config.h"
#include "core/ops/cpu/linear_small_batch.h"

namespace starflow::core::cpu {

// in/out [rows, C]; gamma, beta [C]; mean, rstd [rows] are written for the backward pass.
template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* in, const T* gamma, const T* beta, int64_t rows,
                       int64_t C, T eps);

#ifdef STARFLOW_SMALL_BATCH_KERNEL
// The decode step's form (team op, see linear_small_batch.h): the LayerNorm of in [M, C] written
// transposed into xt [C, Mp], the next small-batch linear's input (padding columns zeroed), with the
// same values as layernorm_forward. mean, rstd [M] are written too.
void layernorm_transposed_team(float* xt, float* mean, float* rstd, const float* in, const float* gamma,
                               const float* beta, int64_t M, int64_t C, float eps);
#endif

// Writes din [rows, C] (=, or += when accumulate_din); accumulates dgamma, dbeta (+=).
template <class T>
void layernorm_backward(T* din, T* dgamma, T* dbeta, const T* dout, const T* in, const T* mean, const T* rstd,
                        const T* gamma, int64_t rows, int64_t C, bool accumulate_din = false);

}  // namespace starflow::core::cpu
