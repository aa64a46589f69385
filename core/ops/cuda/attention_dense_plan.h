// The cuBLAS plans of the dense attention op (attention_dense.cu): the causal op's products (gemm_plan.h) on
// separate q, k, v buffers [B, S, H·dh] instead of one qkv [B, S, 3C], with the score scale folded into α where
// the CPU op applies it. Host-only, checked against the CPU op in tests/gpu/test_gemm_plans.cpp.
#pragma once
#include "core/ops/cuda/gemm_plan.h"

namespace starflow::core::cuda {

inline HeadStrides dense_strides(const AttentionShape& s) { return {s.S * s.C(), s.dh}; }  // q, k, v, out and grads

// scores = q·kᵀ (run with α = scale): column-major scoresᵀ [S(j), S(i)] = (k-stored [dh, S])ᵀ · q-stored [dh, S].
// A = k, B = q, C = probs.
inline GemmPlan dense_scores_plan(const AttentionShape& s) {
  GemmPlan p;
  p.trans_a = true;
  p.m = s.S, p.n = s.S, p.k = s.dh;
  p.lda = s.C(), p.ldb = s.C(), p.ldc = s.S;
  set_head_batching(p, s, dense_strides(s), dense_strides(s), square_strides(s));
  return p;
}

// out = P·V: column-major outᵀ [dh, S] = v-stored [dh, S(j)] · Pᵀ-stored [S(j), S(i)]. A = v, B = probs, C = out.
inline GemmPlan dense_output_plan(const AttentionShape& s) {
  GemmPlan p;
  p.m = s.dh, p.n = s.S, p.k = s.S;
  p.lda = s.C(), p.ldb = s.S, p.ldc = s.C();
  set_head_batching(p, s, dense_strides(s), square_strides(s), dense_strides(s));
  return p;
}

// dP = dO·Vᵀ: column-major dPᵀ [S(j), S(i)] = (v-stored)ᵀ · dO-stored. A = v, B = dout, C = scratch.
// The scores' shapes and strides, with v in place of k and dout in place of q.
inline GemmPlan dense_dprobs_plan(const AttentionShape& s) { return dense_scores_plan(s); }

// dQ = dS·K (run with α = scale): column-major dQᵀ [dh, S(i)] = k-stored [dh, S(j)] · dSᵀ-stored. A = k,
// B = scratch, C = dq.
inline GemmPlan dense_dq_plan(const AttentionShape& s) { return dense_output_plan(s); }

// dK = dSᵀ·Q (α = scale) and dV = Pᵀ·dO: column-major [dh, S(j)] = A-stored [dh, S(i)] · (B-stored [S(j), S(i)])ᵀ.
// A = q or dout, B = scratch or probs, C = dk or dv.
inline GemmPlan dense_dkv_plan(const AttentionShape& s) {
  GemmPlan p;
  p.trans_b = true;
  p.m = s.dh, p.n = s.S, p.k = s.S;
  p.lda = s.C(), p.ldb = s.S, p.ldc = s.C();
  set_head_batching(p, s, dense_strides(s), square_strides(s), dense_strides(s));
  return p;
}

}  // namespace starflow::core::cuda
