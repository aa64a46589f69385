// Token layout ops: patchify/unpatchify (STARFlow feature order (p_row, p_col, channel), spec §1.2) and
// the block permutations (identity or flip of the token axis, spec §1.4).
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

// in [B, C, H, W] → out [B, H/p, W/p, p·p·C] with feature f = (i·p + j)·C + c.
template <class T>
void patchify(T* out, const T* in, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p);

// The exact inverse of patchify.
template <class T>
void unpatchify(T* out, const T* in, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p);

// out[b, t] = in[b, flip ? T−1−t : t] for tokens of D features. The flip is its own inverse, so the
// same call un-permutes, and it is also the backward pass. out and in must not alias.
template <class T>
void permute_tokens(T* out, const T* in, int64_t B, int64_t T_, int64_t D, bool flip);

}  // namespace starflow::core::cpu
