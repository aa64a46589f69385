// GroupNorm over NCHW activations: channels split into groups, each (image, group) normalised over its
// channels and pixels (biased variance), then a per-channel affine. Batch-independent, so an image
// encodes the same whatever batch it is in.
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

// in/out [B, C, HW]; gamma, beta [C]; mean, rstd [B, groups] are written for the backward pass.
// C must be a multiple of groups.
template <class T>
void group_norm_forward(T* out, T* mean, T* rstd, const T* in, const T* gamma, const T* beta, int64_t B, int64_t C,
                        int64_t HW, int64_t groups, T eps);

// Writes din (=, or += when accumulate_din; skipped when nullptr); accumulates dgamma, dbeta (+=, skipped
// when nullptr).
template <class T>
void group_norm_backward(T* din, T* dgamma, T* dbeta, const T* dout, const T* in, const T* mean, const T* rstd,
                         const T* gamma, int64_t B, int64_t C, int64_t HW, int64_t groups,
                         bool accumulate_din = false);

}  // namespace starflow::core::cpu
