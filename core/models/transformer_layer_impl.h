// TransformerLayer's definitions, included by each backend's instantiation (core/models/transformer_layer.cpp
// for the CPU, core/backends/cuda/ for the GPU).
#pragma once
#include <stdexcept>

#include "core/models/transformer_layer.h"
#include "core/ops/activation.h"

namespace starflow::core {

inline LayerOptions LayerOptions::of_block(const FlowConfig& cfg, int64_t k) {
  LayerOptions o;
  o.C = cfg.block_channels(k);
  o.heads = cfg.block_heads(k);
  o.kv_heads = cfg.block_kv_heads(k);
  o.head_dim = cfg.head_dim;
  o.norm = cfg.norm_type;
  o.qk_norm = cfg.use_qk_norm;
  o.post_norm = cfg.use_post_norm;
  o.swiglu = cfg.use_swiglu;
  o.bias = cfg.use_bias;
  return o;
}

template <class Backend>
void LayerActivations<Backend>::resize(const TransformerLayer<Backend>& l, int64_t B, int64_t S) {
  const size_t rows = static_cast<size_t>(B * S), bsc = rows * l.C;
  const size_t qk_rows = rows * static_cast<size_t>(l.n_head + l.n_kv_head);
  for (auto* v : {&input, &mid}) Backend::resize(*v, bsc);
  // Buffers of switched-off parts stay empty.
  Backend::resize(ln1, l.opt.norm == NormType::kNone ? 0 : bsc);
  Backend::resize(ln2, l.opt.norm == NormType::kNone ? 0 : bsc);
  for (auto* v : {&ln1_mean, &ln1_rstd, &ln2_mean, &ln2_rstd}) Backend::resize(*v, rows);
  Backend::resize(attn, rows * l.inner());
  Backend::resize(qkv, rows * l.qkv_width());
  Backend::resize(qkv_full, l.grouped() ? 3 * rows * l.inner() : 0);
  Backend::resize(qkv_split, l.opt.causal ? 0 : 3 * rows * l.inner());
  Backend::resize(qk_raw, l.opt.qk_norm ? qk_rows * l.head_dim : 0);
  Backend::resize(qk_normed, l.opt.qk_norm ? qk_rows * l.head_dim : 0);
  Backend::resize(qk_rrms, l.opt.qk_norm ? qk_rows : 0);
  Backend::resize(probs, static_cast<size_t>(B * l.n_head * S * S));
  Backend::resize(fc1, rows * l.hidden);
  Backend::resize(up, l.opt.swiglu ? rows * l.hidden : 0);
  Backend::resize(gelu, rows * l.hidden);
  for (auto* v : {&attn_proj, &mlp_out}) Backend::resize(*v, l.opt.post_norm ? bsc : 0);
  for (auto* v : {&post_attn_rrms, &post_mlp_rrms}) Backend::resize(*v, l.opt.post_norm ? rows : 0);
}

template <class Backend>
void LayerScratch<Backend>::resize(const TransformerLayer<Backend>& l, int64_t B, int64_t S) {
  const size_t rows = static_cast<size_t>(B * S), bsc = rows * l.C;
  for (auto* v : {&d_mid, &d_norm, &d_post}) Backend::grow(*v, bsc);
  Backend::grow(d_attn, rows * l.inner());
  Backend::grow(d_qkv, rows * l.qkv_width());
  if (l.grouped()) Backend::grow(d_qkv_full, 3 * rows * l.inner());
  if (!l.opt.causal) Backend::grow(d_qkv_split, 3 * rows * l.inner());
  if (l.opt.qk_norm)
    for (auto* v : {&d_qk_a, &d_qk_b}) Backend::grow(*v, rows * (l.n_head + l.n_kv_head) * l.head_dim);
  for (auto* v : {&d_hidden, &d_fc1}) Backend::grow(*v, rows * l.hidden);
  if (l.opt.swiglu) Backend::grow(d_up, rows * l.hidden);
  Backend::grow(d_probs, static_cast<size_t>(B * l.n_head * S * S));
}

template <class Backend>
void DecodeScratch<Backend>::resize(const TransformerLayer<Backend>& l, int64_t rows) {
  const size_t r = static_cast<size_t>(rows), rc = r * l.C, qk_rows = r * (l.n_head + l.n_kv_head);
  for (auto* v : {&ln, &mid, &branch}) Backend::grow(*v, rc);
  for (auto* v : {&mean, &rstd, &post_rrms}) Backend::grow(*v, r);
  Backend::grow(qkv, r * l.qkv_width());
  Backend::grow(attn, r * l.inner());
  if (l.opt.qk_norm) {
    for (auto* v : {&qk_raw, &qk_normed}) Backend::grow(*v, qk_rows * l.head_dim);
    Backend::grow(qk_rrms, qk_rows);
  }
  Backend::grow(hidden, 3 * r * l.hidden);  // fc1 (gate), up and the activation side by side
}

template <class Backend>
TransformerLayer<Backend> TransformerLayer<Backend>::add_to(const Backend& backend, ParameterLayout& layout,
                                                            const std::string& prefix, const LayerOptions& o,
                                                            Communicator* tp, int tp_rank, int parts) {
  TransformerLayer l;
  l.be = &backend;
  l.opt = o;
  const int64_t C = o.C, dh = o.head_dim, Q = o.heads * dh, KV = o.kv_heads * dh;
  // State-dict order of the official Attention and MLP modules.
  auto norm = [&](NormParams& n, const std::string& name) {
    if (o.norm == NormType::kNone) return;
    n.weight = layout.add(name + ".weight", {C});
    if (o.norm == NormType::kLayerNorm) n.bias = layout.add(name + ".bias", {C});
  };
  norm(l.ln1, prefix + "attention.norm");
  // Each rank holds its query heads' q rows and its KV heads' k and v rows (GQA: blocks of unequal extents).
  l.qkv = ColumnParallelLinear<Backend>::add_to(layout, prefix + "attention.qkv", C, Q + 2 * KV, tp, tp_rank, parts, 3,
                                                o.bias, {Q, KV, KV});
  l.proj = RowParallelLinear<Backend>::add_to(layout, prefix + "attention.proj", Q, C, tp, tp_rank, parts, o.bias);
  if (o.qk_norm) {
    l.q_norm = layout.add(prefix + "attention.query_norm.weight", {dh});
    l.k_norm = layout.add(prefix + "attention.key_norm.weight", {dh});
  }
  if (o.post_norm) l.post_attn = layout.add(prefix + "attention.post_norm.weight", {C});
  norm(l.ln2, prefix + "mlp.norm");
  if (o.post_norm) l.post_mlp = layout.add(prefix + "mlp.post_norm.weight", {C});
  if (o.swiglu) {
    l.fc1 = ColumnParallelLinear<Backend>::add_to(layout, prefix + "mlp.gate_proj", C, 4 * C, tp, tp_rank, parts, 1,
                                                  o.bias);
    l.up = ColumnParallelLinear<Backend>::add_to(layout, prefix + "mlp.up_proj", C, 4 * C, tp, tp_rank, parts, 1,
                                                 o.bias);
    l.fc2 = RowParallelLinear<Backend>::add_to(layout, prefix + "mlp.down_proj", 4 * C, C, tp, tp_rank, parts, o.bias);
  } else {
    l.fc1 = ColumnParallelLinear<Backend>::add_to(layout, prefix + "mlp.main.0", C, 4 * C, tp, tp_rank, parts, 1,
                                                  o.bias);
    l.fc2 = RowParallelLinear<Backend>::add_to(layout, prefix + "mlp.main.2", 4 * C, C, tp, tp_rank, parts, o.bias);
  }
  l.C = C;
  l.head_dim = dh;
  l.n_head = o.heads / parts;
  l.n_kv_head = o.kv_heads / parts;
  l.hidden = 4 * C / parts;
  return l;
}

template <class Backend>
std::vector<int64_t> TransformerLayer<Backend>::offsets() const {
  std::vector<int64_t> all = {post_mlp,   fc2.weight, fc2.bias,   up.weight, up.bias,   fc1.weight,
                              fc1.bias,   ln2.weight, ln2.bias,   post_attn, proj.weight, proj.bias,
                              q_norm,     k_norm,     qkv.weight, qkv.bias,  ln1.weight, ln1.bias};
  std::vector<int64_t> present;
  for (int64_t o : all)
    if (o >= 0) present.push_back(o);
  return present;
}

template <class Backend>
std::vector<typename TransformerLayer<Backend>::DecodeLinear> TransformerLayer<Backend>::decode_linears() const {
  std::vector<DecodeLinear> out = {{qkv.weight, qkv.in, qkv.out}, {proj.weight, proj.in, proj.out},
                                   {fc1.weight, fc1.in, fc1.out}, {fc2.weight, fc2.in, fc2.out}};
  if (opt.swiglu) out.push_back({up.weight, up.in, up.out});
  return out;
}

template <class Backend>
const typename Backend::Scalar* TransformerLayer<Backend>::norm_forward(const NormParams& n, const T* P, T* out,
                                                                        Stat* mean, Stat* rstd, const T* x,
                                                                        int64_t rows) const {
  switch (opt.norm) {
    case NormType::kLayerNorm:
      be->layernorm_forward(out, mean, rstd, x, P + n.weight, P + n.bias, rows, C, kLayerNormEps);
      return out;
    case NormType::kRmsNorm:
      be->rmsnorm_forward(out, rstd, x, P + n.weight, rows, C, kRmsNormEps);
      return out;
    case NormType::kNone: break;
  }
  return x;
}

template <class Backend>
void TransformerLayer<Backend>::norm_backward(const NormParams& n, const T* P, T* G, T* dx, const T* dnorm, const T* x,
                                              const Stat* mean, const Stat* rstd, int64_t rows) const {
  switch (opt.norm) {
    case NormType::kLayerNorm:
      be->layernorm_backward(dx, G ? G + n.weight : nullptr, G ? G + n.bias : nullptr, dnorm, x, mean, rstd,
                             P + n.weight, rows, C, /*accumulate_din=*/true);
      return;
    case NormType::kRmsNorm:
      be->rmsnorm_backward(dx, G ? G + n.weight : nullptr, dnorm, x, rstd, P + n.weight, rows, C,
                           /*accumulate_din=*/true);
      return;
    case NormType::kNone: be->axpy(dx, 1.0, dnorm, rows * C);
  }
}

template <class Backend>
void TransformerLayer<Backend>::qk_norm_forward(const T* P, T* q, T* raw, T* normed, Stat* rrms, int64_t rows) const {
  // The q and k heads are gathered into [rows·heads, dh] rows, normalised, and written back.
  const int64_t W = qkv_width(), Q = n_head * head_dim, K = n_kv_head * head_dim;
  be->copy_strided(raw, Q, q, W, rows, Q);
  be->copy_strided(raw + rows * Q, K, q + Q, W, rows, K);
  be->rmsnorm_forward(normed, rrms, raw, P + q_norm, rows * n_head, head_dim, kRmsNormEps);
  be->rmsnorm_forward(normed + rows * Q, rrms + rows * n_head, raw + rows * Q, P + k_norm, rows * n_kv_head, head_dim,
                      kRmsNormEps);
  be->copy_strided(q, W, normed, Q, rows, Q);
  be->copy_strided(q + Q, W, normed + rows * Q, K, rows, K);
}

template <class Backend>
void TransformerLayer<Backend>::qk_norm_backward(const T* P, T* G, T* dq, const T* raw, const Stat* rrms, T* sa, T* sb,
                                                 int64_t rows) const {
  const int64_t W = qkv_width(), Q = n_head * head_dim, K = n_kv_head * head_dim;
  be->copy_strided(sa, Q, dq, W, rows, Q);
  be->copy_strided(sa + rows * Q, K, dq + Q, W, rows, K);
  be->rmsnorm_backward(sb, G ? G + q_norm : nullptr, sa, raw, rrms, P + q_norm, rows * n_head, head_dim);
  be->rmsnorm_backward(sb + rows * Q, G ? G + k_norm : nullptr, sa + rows * Q, raw + rows * Q, rrms + rows * n_head,
                       P + k_norm, rows * n_kv_head, head_dim);
  be->copy_strided(dq, W, sb, Q, rows, Q);
  be->copy_strided(dq + Q, W, sb + rows * Q, K, rows, K);
}

template <class Backend>
void TransformerLayer<Backend>::post_norm_add(int64_t gain, const T* P, T* out, Stat* rrms, const T* branch,
                                              const T* residual, int64_t rows) const {
  be->rmsnorm_forward(out, rrms, branch, P + gain, rows, C, kRmsNormEps);
  be->add_bias_residual(out, nullptr, residual, rows, C);
}

template <class Backend>
void TransformerLayer<Backend>::forward(const T* P, LayerActivations<Backend>& a, const T* x, T* out, int64_t B,
                                        int64_t S, const RopeTable& rope) const {
  const int64_t rows = B * S, W = qkv_width();
  a.resize(*this, B, S);
  if (x != a.input.data()) be->copy(a.input.data(), x, rows * C);  // the block writes it in place
  const T* h1 = norm_forward(ln1, P, a.ln1.data(), a.ln1_mean.data(), a.ln1_rstd.data(), x, rows);
  qkv.forward(*be, P, h1, a.qkv.data(), rows);
  if (opt.qk_norm) qk_norm_forward(P, a.qkv.data(), a.qk_raw.data(), a.qk_normed.data(), a.qk_rrms.data(), rows);
  be->rope_rotate(a.qkv.data(), B, S, S * W, W, n_head + n_kv_head, rope, 0, false);
  const T* heads = a.qkv.data();
  if (grouped()) {
    be->expand_kv_heads(a.qkv_full.data(), a.qkv.data(), rows, n_head, n_kv_head, head_dim);
    heads = a.qkv_full.data();
  }
  if (opt.causal) {
    be->attention_forward(a.attn.data(), a.probs.data(), heads, B, S, n_head, head_dim, attention_scale(head_dim));
  } else {  // the dense op takes q, k and v as separate tensors
    const int64_t I = inner();
    for (int part = 0; part < 3; ++part)
      be->copy_strided(a.qkv_split.data() + part * rows * I, I, heads + part * I, 3 * I, rows, I);
    const T* q = a.qkv_split.data();
    be->attention_dense_forward(a.attn.data(), a.probs.data(), q, q + rows * I, q + 2 * rows * I, nullptr, nullptr, B,
                                S, n_head, head_dim, attention_scale(head_dim));
  }
  if (opt.post_norm) {
    proj.forward(*be, P, a.attn.data(), a.attn_proj.data(), nullptr, rows);
    post_norm_add(post_attn, P, a.mid.data(), a.post_attn_rrms.data(), a.attn_proj.data(), x, rows);
  } else {
    proj.forward(*be, P, a.attn.data(), a.mid.data(), x, rows);
  }
  const T* h2 = norm_forward(ln2, P, a.ln2.data(), a.ln2_mean.data(), a.ln2_rstd.data(), a.mid.data(), rows);
  fc1.forward(*be, P, h2, a.fc1.data(), rows);
  if (opt.swiglu) {
    up.forward(*be, P, h2, a.up.data(), rows);
    be->gated_activation_forward(a.gelu.data(), a.fc1.data(), a.up.data(), rows * hidden, Activation::kGeluTanh);
  } else {
    be->gelu_forward(a.gelu.data(), a.fc1.data(), rows * hidden);
  }
  if (opt.post_norm) {
    fc2.forward(*be, P, a.gelu.data(), a.mlp_out.data(), nullptr, rows);
    post_norm_add(post_mlp, P, out, a.post_mlp_rrms.data(), a.mlp_out.data(), a.mid.data(), rows);
  } else {
    fc2.forward(*be, P, a.gelu.data(), out, a.mid.data(), rows);
  }
}

template <class Backend>
void TransformerLayer<Backend>::backward(const T* P, T* G, const LayerActivations<Backend>& a, LayerScratch<Backend>& s,
                                         const T* dout, T* dx, int64_t B, int64_t S, const RopeTable& rope) const {
  const int64_t rows = B * S, n = rows * C, W = qkv_width();
  s.resize(*this, B, S);
  // G == nullptr: input gradient only (score-based denoising); the ops skip null parameter gradients.
  auto grad = [G](int64_t offset) { return G ? G + offset : nullptr; };
  const T* h1 = opt.norm == NormType::kNone ? a.input.data() : a.ln1.data();
  const T* h2 = opt.norm == NormType::kNone ? a.mid.data() : a.ln2.data();
  // MLP branch: out = mid + P'(fc2(act(fc1(N'(mid))))). Under TP, dout is whole on every rank (the row-parallel
  // forward's all-reduce has the identity as its conjugate), and fc1's input gradient is summed over the ranks.
  be->copy(s.d_mid.data(), dout, n);
  const T* d_branch = dout;
  if (opt.post_norm) {
    be->rmsnorm_backward(s.d_post.data(), grad(post_mlp), dout, a.mlp_out.data(), a.post_mlp_rrms.data(), P + post_mlp,
                         rows, C);
    d_branch = s.d_post.data();
  }
  fc2.backward(*be, P, G, d_branch, a.gelu.data(), s.d_hidden.data(), rows);
  if (opt.swiglu) {
    be->gated_activation_backward(s.d_fc1.data(), s.d_up.data(), s.d_hidden.data(), a.fc1.data(), a.up.data(),
                                  rows * hidden, Activation::kGeluTanh);
    fc1.backward(*be, P, G, s.d_fc1.data(), h2, s.d_norm.data(), rows, /*accumulate=*/false, /*reduce=*/false);
    up.backward(*be, P, G, s.d_up.data(), h2, s.d_norm.data(), rows, /*accumulate=*/true);
  } else {
    be->gelu_backward(s.d_fc1.data(), s.d_hidden.data(), a.fc1.data(), rows * hidden);
    fc1.backward(*be, P, G, s.d_fc1.data(), h2, s.d_norm.data(), rows);
  }
  norm_backward(ln2, P, G, s.d_mid.data(), s.d_norm.data(), a.mid.data(), a.ln2_mean.data(), a.ln2_rstd.data(), rows);
  // Attention branch: mid = x + P(proj(attn(rope(qknorm(qkv(N(x))))))).
  be->copy(dx, s.d_mid.data(), n);
  d_branch = s.d_mid.data();
  if (opt.post_norm) {
    be->rmsnorm_backward(s.d_post.data(), grad(post_attn), s.d_mid.data(), a.attn_proj.data(), a.post_attn_rrms.data(),
                         P + post_attn, rows, C);
    d_branch = s.d_post.data();
  }
  proj.backward(*be, P, G, d_branch, a.attn.data(), s.d_attn.data(), rows);
  T* d_heads = grouped() ? s.d_qkv_full.data() : s.d_qkv.data();
  if (opt.causal) {
    be->attention_backward(d_heads, s.d_probs.data(), s.d_attn.data(), grouped() ? a.qkv_full.data() : a.qkv.data(),
                           a.probs.data(), B, S, n_head, head_dim, attention_scale(head_dim));
  } else {
    const int64_t I = inner();
    const T* q = a.qkv_split.data();
    T* dq = s.d_qkv_split.data();
    be->attention_dense_backward(dq, dq + rows * I, dq + 2 * rows * I, nullptr, s.d_probs.data(), s.d_attn.data(), q,
                                 q + rows * I, q + 2 * rows * I, a.probs.data(), B, S, n_head, head_dim,
                                 attention_scale(head_dim));
    for (int part = 0; part < 3; ++part)
      be->copy_strided(d_heads + part * I, 3 * I, dq + part * rows * I, I, rows, I);
  }
  if (grouped()) be->reduce_kv_heads(s.d_qkv.data(), s.d_qkv_full.data(), rows, n_head, n_kv_head, head_dim);
  be->rope_rotate(s.d_qkv.data(), B, S, S * W, W, n_head + n_kv_head, rope, 0, /*inverse=*/true);
  if (opt.qk_norm) {
    qk_norm_backward(P, G, s.d_qkv.data(), a.qk_raw.data(), a.qk_rrms.data(), s.d_qk_a.data(), s.d_qk_b.data(), rows);
    // The QK-norm gains are whole on every TP rank but each rank normed only its heads: their gradients are
    // partial sums, added up over the group.
    if (G && qkv.tp) {
      tp_all_reduce(*be, qkv.tp, G + q_norm, head_dim);
      tp_all_reduce(*be, qkv.tp, G + k_norm, head_dim);
    }
  }
  qkv.backward(*be, P, G, s.d_qkv.data(), h1, s.d_norm.data(), rows);
  norm_backward(ln1, P, G, dx, s.d_norm.data(), a.input.data(), a.ln1_mean.data(), a.ln1_rstd.data(), rows);
}

template <class Backend>
void TransformerLayer<Backend>::forward_cached(const T* P, const DecodeWeights& W, KVCache& cache,
                                               DecodeScratch<Backend>& s, const T* x, T* out, int64_t B, int64_t n,
                                               int64_t start, const RopeTable& rope, double temperature) const {
  const int64_t rows = B * n, width = qkv_width();
  s.resize(*this, rows);  // a TP rank uses the first 1/p of the wide buffers
  T* gate = s.hidden.data();
  T* up_out = s.hidden.data() + rows * hidden;
  T* act = s.hidden.data() + 2 * rows * hidden;
  const T* h1 = norm_forward(ln1, P, s.ln.data(), s.mean.data(), s.rstd.data(), x, rows);
  qkv.forward_decode(*be, W, P, h1, s.qkv.data(), rows);
  if (opt.qk_norm) qk_norm_forward(P, s.qkv.data(), s.qk_raw.data(), s.qk_normed.data(), s.qk_rrms.data(), rows);
  be->rope_rotate(s.qkv.data(), B, n, n * width, width, n_head + n_kv_head, rope, start, false);
  be->attention_cached_forward(s.attn.data(), cache, s.qkv.data(), B, n, start,
                               attention_scale(head_dim) / temperature, n_head);
  if (opt.post_norm) {
    proj.forward_decode(*be, W, P, s.attn.data(), s.branch.data(), nullptr, rows);
    post_norm_add(post_attn, P, s.mid.data(), s.post_rrms.data(), s.branch.data(), x, rows);
  } else {
    proj.forward_decode(*be, W, P, s.attn.data(), s.mid.data(), x, rows);
  }
  const T* h2 = norm_forward(ln2, P, s.ln.data(), s.mean.data(), s.rstd.data(), s.mid.data(), rows);
  fc1.forward_decode(*be, W, P, h2, gate, rows);
  if (opt.swiglu) {
    up.forward_decode(*be, W, P, h2, up_out, rows);
    be->gated_activation_forward(act, gate, up_out, rows * hidden, Activation::kGeluTanh);
  } else {
    be->gelu_forward(act, gate, rows * hidden);
  }
  if (opt.post_norm) {
    fc2.forward_decode(*be, W, P, act, s.branch.data(), nullptr, rows);
    post_norm_add(post_mlp, P, out, s.post_rrms.data(), s.branch.data(), s.mid.data(), rows);
  } else {
    fc2.forward_decode(*be, W, P, act, out, s.mid.data(), rows);
  }
}

template <class Backend>
void TransformerLayer<Backend>::store_kv(const T* P, const DecodeWeights& W, KVCache& cache, DecodeScratch<Backend>& s,
                                         const T* x, int64_t B, int64_t n, int64_t start, const RopeTable& rope) const {
  const int64_t rows = B * n, width = qkv_width();
  s.resize(*this, rows);
  const T* h1 = norm_forward(ln1, P, s.ln.data(), s.mean.data(), s.rstd.data(), x, rows);
  qkv.forward_decode(*be, W, P, h1, s.qkv.data(), rows);
  if (opt.qk_norm) qk_norm_forward(P, s.qkv.data(), s.qk_raw.data(), s.qk_normed.data(), s.qk_rrms.data(), rows);
  be->rope_rotate(s.qkv.data() + inner(), B, n, n * width, width, n_kv_head, rope, start, false);  // k only
  be->attention_cached_store(cache, s.qkv.data(), B, n, start, n_head);
}

}  // namespace starflow::core
