// Dense (bidirectional, unmasked-by-position) multi-head attention: every query sees every key. The SD VAE's
// mid-block attention (one head over the pixels, scale 1/√C) and the T5 encoder's self-attention (scale 1, an
// additive relative-position bias per head, an additive key mask for padding) are both this op.
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

// q, k, v [B, S, H·dh], out [B, S, H·dh], head-major features (feature = head·dh + i).
// scores[b, h, i, j] = scale·(q_i · k_j) + bias[h, i, j] + key_mask_add[b, j]; bias [H, S, S] and key_mask_add
// [B, S] are optional (nullptr: none). probs [B, H, S, S] = softmax over j (computed in T), saved for backward;
// out = probs · v per head.
template <class T>
void attention_dense_forward(T* out, T* probs, const T* q, const T* k, const T* v, const T* bias,
                             const T* key_mask_add, int64_t B, int64_t S, int64_t n_head, int64_t head_dim, T scale);

// dq, dk, dv [B, S, H·dh] (=; each skipped when nullptr). dbias [H, S, S] (+=, summed over the batch in order;
// skipped when nullptr). scratch: at least B·H·S·S elements (the gradient of the scores).
template <class T>
void attention_dense_backward(T* dq, T* dk, T* dv, T* dbias, T* scratch, const T* dout, const T* q, const T* k,
                              const T* v, const T* probs, int64_t B, int64_t S, int64_t n_head, int64_t head_dim,
                              T scale);

}  // namespace starflow::core::cpu
