// Linear forward for a few rows (token-by-token decoding: one row per sample), where BLAS packing and
// threading overheads dominate: out[m, n] = Σ_k in[m, k]·W[n, k] + b[n] as register-blocked dot products
// that stream each weight row once from memory.
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

// Rows up to which linear_forward uses this kernel for float.
constexpr int64_t kSmallBatchRows = 48;

void linear_forward_small_batch(float* out, const float* in, const float* weight, const float* bias, int64_t M,
                                int64_t K, int64_t N);

}  // namespace starflow::core::cpu
