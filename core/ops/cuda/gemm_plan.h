// How the row-major products of the linear and attention ops map onto column-major cuBLAS calls. Plain C++
// with no CUDA types, so that a host test can run every plan through a reference GEMM and compare it with the
// CPU ops on a machine without a GPU (tests/gpu/test_gemm_plans.cpp): the transposes, leading dimensions
// and batch strides are the part of a cuBLAS port that is easiest to get wrong.
#pragma once
#include <cstdint>

namespace starflow::core::cuda {

// launches × batch column-major products C = α·op(A)·op(B) + β·C, with op(A) m×k, op(B) k×n, C m×n.
// Member j of launch l reads A at a_offset + l·a_step + j·a_stride (likewise B and C), in elements from the
// operand's base pointer. A row-major [r, c] matrix with leading dimension ld is the column-major [c, r]
// matrix with the same ld, which is how every plan below is derived.
struct GemmPlan {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  int64_t a_stride = 0, b_stride = 0, c_stride = 0;  // between the members of one launch
  int64_t a_step = 0, b_step = 0, c_step = 0;        // between launches
  int64_t batch = 1, launches = 1;
  int64_t a_offset = 0, b_offset = 0, c_offset = 0;
};

// ---- linear (PyTorch convention: in [M, K], weight [N, K], out [M, N]) ----

// out = in·Wᵀ: column-major outᵀ [N, M] = W(ᵀ of the stored [K, N]) · inᵀ [K, M]. A = weight, B = in, C = out.
inline GemmPlan linear_forward_plan(int64_t M, int64_t K, int64_t N) {
  GemmPlan p;
  p.trans_a = true;
  p.m = N, p.n = M, p.k = K;
  p.lda = K, p.ldb = K, p.ldc = N;
  return p;
}

// din = dout·W: column-major dinᵀ [K, M] = W-stored [K, N] · doutᵀ [N, M]. A = weight, B = dout, C = din.
inline GemmPlan linear_backward_input_plan(int64_t M, int64_t K, int64_t N) {
  GemmPlan p;
  p.m = K, p.n = M, p.k = N;
  p.lda = K, p.ldb = N, p.ldc = K;
  return p;
}

// dW += doutᵀ·in: column-major dWᵀ [K, N] = inᵀ [K, M] · (doutᵀ [N, M])ᵀ. A = in, B = dout, C = dweight.
inline GemmPlan linear_backward_weight_plan(int64_t M, int64_t K, int64_t N) {
  GemmPlan p;
  p.trans_b = true;
  p.m = K, p.n = N, p.k = M;
  p.lda = K, p.ldb = N, p.ldc = K;
  return p;
}

// ---- causal attention over qkv [B, S, 3C] (C = H·dh), one (batch, head) pair per GEMM member ----
// Every operand's offset is linear in the batch b and the head h, so one of the two is looped over
// (launches) and the other batched (cuBLAS strided batch); the smaller one is looped.
struct AttentionShape {
  int64_t B = 0, S = 0, H = 0, dh = 0;
  int64_t C() const { return H * dh; }
};

// Strides of one operand per batch element and per head, in elements.
struct HeadStrides {
  int64_t per_batch = 0, per_head = 0;
};
inline HeadStrides qkv_strides(const AttentionShape& s) { return {s.S * 3 * s.C(), s.dh}; }   // q, k, v, dq, dk, dv
inline HeadStrides heads_strides(const AttentionShape& s) { return {s.S * s.C(), s.dh}; }     // out, dout
inline HeadStrides square_strides(const AttentionShape& s) { return {s.H * s.S * s.S, s.S * s.S}; }  // probs

inline void set_head_batching(GemmPlan& p, const AttentionShape& s, HeadStrides a, HeadStrides b, HeadStrides c) {
  const bool loop_batch = s.B <= s.H;  // loop over the smaller of B and H
  p.launches = loop_batch ? s.B : s.H;
  p.batch = loop_batch ? s.H : s.B;
  p.a_step = loop_batch ? a.per_batch : a.per_head;
  p.b_step = loop_batch ? b.per_batch : b.per_head;
  p.c_step = loop_batch ? c.per_batch : c.per_head;
  p.a_stride = loop_batch ? a.per_head : a.per_batch;
  p.b_stride = loop_batch ? b.per_head : b.per_batch;
  p.c_stride = loop_batch ? c.per_head : c.per_batch;
}

// scores[i, j] = q_i·k_j into probs: column-major scoresᵀ [S(j), S(i)] = (k-stored [dh, S])ᵀ · q-stored [dh, S].
// A = qkv (k block), B = qkv (q block), C = probs.
inline GemmPlan attention_scores_plan(const AttentionShape& s) {
  GemmPlan p;
  p.trans_a = true;
  p.m = s.S, p.n = s.S, p.k = s.dh;
  p.lda = 3 * s.C(), p.ldb = 3 * s.C(), p.ldc = s.S;
  p.a_offset = s.C();  // k
  set_head_batching(p, s, qkv_strides(s), qkv_strides(s), square_strides(s));
  return p;
}

// out = P·V: column-major outᵀ [dh, S] = v-stored [dh, S(j)] · Pᵀ-stored [S(j), S(i)]. A = qkv (v), B = probs,
// C = out.
inline GemmPlan attention_output_plan(const AttentionShape& s) {
  GemmPlan p;
  p.m = s.dh, p.n = s.S, p.k = s.S;
  p.lda = 3 * s.C(), p.ldb = s.S, p.ldc = s.C();
  p.a_offset = 2 * s.C();  // v
  set_head_batching(p, s, qkv_strides(s), square_strides(s), heads_strides(s));
  return p;
}

// dP = dO·Vᵀ: column-major dPᵀ [S(j), S(i)] = (v-stored [dh, S])ᵀ · dO-stored [dh, S]. A = qkv (v), B = dout,
// C = scratch.
inline GemmPlan attention_dprobs_plan(const AttentionShape& s) {
  GemmPlan p;
  p.trans_a = true;
  p.m = s.S, p.n = s.S, p.k = s.dh;
  p.lda = 3 * s.C(), p.ldb = s.C(), p.ldc = s.S;
  p.a_offset = 2 * s.C();
  set_head_batching(p, s, qkv_strides(s), heads_strides(s), square_strides(s));
  return p;
}

// dQ = dS·K: column-major dQᵀ [dh, S(i)] = k-stored [dh, S(j)] · dSᵀ-stored [S(j), S(i)]. A = qkv (k),
// B = scratch (dS), C = dqkv (q block).
inline GemmPlan attention_dq_plan(const AttentionShape& s) {
  GemmPlan p;
  p.m = s.dh, p.n = s.S, p.k = s.S;
  p.lda = 3 * s.C(), p.ldb = s.S, p.ldc = 3 * s.C();
  p.a_offset = s.C();
  set_head_batching(p, s, qkv_strides(s), square_strides(s), qkv_strides(s));
  return p;
}

// dK = dSᵀ·Q: column-major dKᵀ [dh, S(j)] = q-stored [dh, S(i)] · (dSᵀ-stored [S(j), S(i)])ᵀ. A = qkv (q),
// B = scratch (dS), C = dqkv (k block).
inline GemmPlan attention_dk_plan(const AttentionShape& s) {
  GemmPlan p;
  p.trans_b = true;
  p.m = s.dh, p.n = s.S, p.k = s.S;
  p.lda = 3 * s.C(), p.ldb = s.S, p.ldc = 3 * s.C();
  p.c_offset = s.C();
  set_head_batching(p, s, qkv_strides(s), square_strides(s), qkv_strides(s));
  return p;
}

// dV = Pᵀ·dO: column-major dVᵀ [dh, S(j)] = dO-stored [dh, S(i)] · (Pᵀ-stored [S(j), S(i)])ᵀ. A = dout,
// B = probs, C = dqkv (v block).
inline GemmPlan attention_dv_plan(const AttentionShape& s) {
  GemmPlan p;
  p.trans_b = true;
  p.m = s.dh, p.n = s.S, p.k = s.S;
  p.lda = s.C(), p.ldb = s.S, p.ldc = 3 * s.C();
  p.c_offset = 2 * s.C();
  set_head_batching(p, s, heads_strides(s), square_strides(s), qkv_strides(s));
  return p;
}

}  // namespace starflow::core::cuda
