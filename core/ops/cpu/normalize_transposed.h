// The second half of the decode step's normalisations (LayerNorm, RMSNorm): writing the normalised rows
// transposed, xt [C, Mp], the next small-batch linear's input (linear_small_batch.h).
#pragma once
#include <cstdint>

#include "core/build_config.h"
#include "core/ops/cpu/linear_small_batch.h"

namespace starflow::core::cpu {

#ifdef STARFLOW_SMALL_BATCH_KERNEL
// xt[j, r] = ((in[r, j] − shift[r]) · scale[r]) · g[j] + beta[j] for r < M, and 0 for the padding rows
// M ≤ r < Mp, where g[j] = gamma[j] (or 1 + gamma[j] when unit_offset) and beta may be null. shift and
// scale hold Mp entries. Team op (see linear_small_batch.h): features are split between the threads in
// blocks of 8, each an 8 × 8 register transpose per 8 rows, so the rows are read along their length and
// xt is written in whole vectors.
void normalize_transposed_team(float* xt, const float* in, int64_t M, int64_t C, const float* shift,
                               const float* scale, const float* gamma, const float* beta, bool unit_offset);
#endif

}  // namespace starflow::core::cpu
