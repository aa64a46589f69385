// TransformerLayer's definitions, included by each backend's instantiation (core/models/transformer_layer.cpp
// for the CPU, core/backends/cuda/ for the GPU).
#pragma once
#include "core/models/transformer_layer.h"

namespace starflow::core {

template <class Backend>
void LayerActivations<Backend>::resize(int64_t B, int64_t S, int64_t C, int64_t inner, int64_t hidden,
                                       int64_t n_head) {
  const size_t rows = static_cast<size_t>(B * S), bsc = rows * C;
  for (auto* v : {&input, &ln1, &mid, &ln2}) Backend::resize(*v, bsc);
  for (auto* v : {&ln1_mean, &ln1_rstd, &ln2_mean, &ln2_rstd}) Backend::resize(*v, rows);
  Backend::resize(attn, rows * inner);
  Backend::resize(qkv, 3 * rows * inner);
  Backend::resize(probs, static_cast<size_t>(B * n_head * S * S));
  Backend::resize(fc1, rows * hidden);
  Backend::resize(gelu, rows * hidden);
}

template <class Backend>
void LayerScratch<Backend>::resize(int64_t B, int64_t S, int64_t C, int64_t inner, int64_t hidden, int64_t n_head) {
  const size_t rows = static_cast<size_t>(B * S), bsc = rows * C;
  for (auto* v : {&d_mid, &d_norm}) Backend::grow(*v, bsc);
  Backend::grow(d_attn, rows * inner);
  Backend::grow(d_qkv, 3 * rows * inner);
  Backend::grow(d_hidden, rows * hidden);
  Backend::grow(d_fc1, rows * hidden);
  Backend::grow(d_probs, static_cast<size_t>(B * n_head * S * S));
}

template <class Backend>
void DecodeScratch<Backend>::resize(int64_t rows, int64_t C) {
  const size_t rc = static_cast<size_t>(rows * C);
  if (ln.size() < rc) {
    for (auto* v : {&ln, &attn, &mid}) Backend::resize(*v, rc);
    Backend::resize(mean, rows);
    Backend::resize(rstd, rows);
    Backend::resize(qkv, 3 * rc);
    Backend::resize(hidden, 8 * rc);  // fc1 output and GELU output side by side
  }
}

template <class Backend>
TransformerLayer<Backend> TransformerLayer<Backend>::add_to(const Backend& backend, ParameterLayout& layout,
                                                            const std::string& prefix, int64_t C, int64_t head_dim,
                                                            Communicator* tp, int tp_rank, int parts) {
  TransformerLayer l;
  l.be = &backend;
  l.ln1.weight = layout.add(prefix + "attention.norm.weight", {C});
  l.ln1.bias = layout.add(prefix + "attention.norm.bias", {C});
  l.qkv = ColumnParallelLinear<Backend>::add_to(layout, prefix + "attention.qkv", C, 3 * C, tp, tp_rank, parts, 3);
  l.proj = RowParallelLinear<Backend>::add_to(layout, prefix + "attention.proj", C, C, tp, tp_rank, parts);
  l.ln2.weight = layout.add(prefix + "mlp.norm.weight", {C});
  l.ln2.bias = layout.add(prefix + "mlp.norm.bias", {C});
  l.fc1 = ColumnParallelLinear<Backend>::add_to(layout, prefix + "mlp.main.0", C, 4 * C, tp, tp_rank, parts);
  l.fc2 = RowParallelLinear<Backend>::add_to(layout, prefix + "mlp.main.2", 4 * C, C, tp, tp_rank, parts);
  l.C = C;
  l.head_dim = head_dim;
  l.n_head = C / head_dim / parts;
  l.hidden = 4 * C / parts;
  return l;
}

template <class Backend>
std::vector<int64_t> TransformerLayer<Backend>::offsets() const {
  return {fc2.weight, fc2.bias, fc1.weight, fc1.bias, ln2.weight, ln2.bias,
          proj.weight, proj.bias, qkv.weight, qkv.bias, ln1.weight, ln1.bias};
}

template <class Backend>
void TransformerLayer<Backend>::forward(const T* P, LayerActivations<Backend>& a, const T* x, T* out, int64_t B,
                                        int64_t S, const RopeTable& rope) const {
  const int64_t rows = B * S, I = inner();
  a.resize(B, S, C, I, hidden, n_head);
  if (x != a.input.data()) be->copy(a.input.data(), x, rows * C);  // the block writes it in place
  be->layernorm_forward(a.ln1.data(), a.ln1_mean.data(), a.ln1_rstd.data(), x, P + ln1.weight, P + ln1.bias, rows, C,
                        kLayerNormEps);
  qkv.forward(*be, P, a.ln1.data(), a.qkv.data(), rows);
  be->rope_rotate(a.qkv.data(), B, S, S * 3 * I, 3 * I, 2 * n_head, rope, 0, false);
  be->attention_forward(a.attn.data(), a.probs.data(), a.qkv.data(), B, S, n_head, head_dim, attention_scale(head_dim));
  proj.forward(*be, P, a.attn.data(), a.mid.data(), x, rows);
  be->layernorm_forward(a.ln2.data(), a.ln2_mean.data(), a.ln2_rstd.data(), a.mid.data(), P + ln2.weight,
                        P + ln2.bias, rows, C, kLayerNormEps);
  fc1.forward(*be, P, a.ln2.data(), a.fc1.data(), rows);
  be->gelu_forward(a.gelu.data(), a.fc1.data(), rows * hidden);
  fc2.forward(*be, P, a.gelu.data(), out, a.mid.data(), rows);
}

template <class Backend>
void TransformerLayer<Backend>::backward(const T* P, T* G, const LayerActivations<Backend>& a, LayerScratch<Backend>& s,
                                         const T* dout, T* dx, int64_t B, int64_t S, const RopeTable& rope) const {
  const int64_t rows = B * S, n = rows * C, I = inner();
  s.resize(B, S, C, I, hidden, n_head);
  // G == nullptr: input gradient only (score-based denoising); the ops skip null parameter gradients.
  auto grad = [G](int64_t offset) { return G ? G + offset : nullptr; };
  // MLP branch: out = mid + fc2(gelu(fc1(LN2(mid)))). Under TP, dout is whole on every rank (the row-parallel
  // forward's all-reduce has the identity as its conjugate), and fc1's input gradient is summed over the ranks.
  be->copy(s.d_mid.data(), dout, n);
  fc2.backward(*be, P, G, dout, a.gelu.data(), s.d_hidden.data(), rows);
  be->gelu_backward(s.d_fc1.data(), s.d_hidden.data(), a.fc1.data(), rows * hidden);
  fc1.backward(*be, P, G, s.d_fc1.data(), a.ln2.data(), s.d_norm.data(), rows);
  be->layernorm_backward(s.d_mid.data(), grad(ln2.weight), grad(ln2.bias), s.d_norm.data(), a.mid.data(),
                         a.ln2_mean.data(), a.ln2_rstd.data(), P + ln2.weight, rows, C, /*accumulate_din=*/true);
  // Attention branch: mid = x + proj(attn(rope(qkv(LN1(x))))).
  be->copy(dx, s.d_mid.data(), n);
  proj.backward(*be, P, G, s.d_mid.data(), a.attn.data(), s.d_attn.data(), rows);
  be->attention_backward(s.d_qkv.data(), s.d_probs.data(), s.d_attn.data(), a.qkv.data(), a.probs.data(), B, S, n_head,
                         head_dim, attention_scale(head_dim));
  be->rope_rotate(s.d_qkv.data(), B, S, S * 3 * I, 3 * I, 2 * n_head, rope, 0, /*inverse=*/true);
  qkv.backward(*be, P, G, s.d_qkv.data(), a.ln1.data(), s.d_norm.data(), rows);
  be->layernorm_backward(dx, grad(ln1.weight), grad(ln1.bias), s.d_norm.data(), a.input.data(), a.ln1_mean.data(),
                         a.ln1_rstd.data(), P + ln1.weight, rows, C, /*accumulate_din=*/true);
}

template <class Backend>
void TransformerLayer<Backend>::forward_cached(const T* P, const DecodeWeights& W, KVCache& cache,
                                               DecodeScratch<Backend>& s, const T* x, T* out, int64_t B, int64_t n,
                                               int64_t start, const RopeTable& rope) const {
  const int64_t rows = B * n, I = inner();
  s.resize(rows, C);  // sized for the whole layer; a TP rank uses the first 1/p of the wide buffers
  T* fc1_out = s.hidden.data();
  T* act = s.hidden.data() + rows * hidden;
  be->layernorm_forward(s.ln.data(), s.mean.data(), s.rstd.data(), x, P + ln1.weight, P + ln1.bias, rows, C,
                        kLayerNormEps);
  qkv.forward_decode(*be, W, P, s.ln.data(), s.qkv.data(), rows);
  be->rope_rotate(s.qkv.data(), B, n, n * 3 * I, 3 * I, 2 * n_head, rope, start, false);
  be->attention_cached_forward(s.attn.data(), cache, s.qkv.data(), B, n, start, attention_scale(head_dim));
  proj.forward_decode(*be, W, P, s.attn.data(), s.mid.data(), x, rows);
  be->layernorm_forward(s.ln.data(), s.mean.data(), s.rstd.data(), s.mid.data(), P + ln2.weight, P + ln2.bias, rows,
                        C, kLayerNormEps);
  fc1.forward_decode(*be, W, P, s.ln.data(), fc1_out, rows);
  be->gelu_forward(act, fc1_out, rows * hidden);
  fc2.forward_decode(*be, W, P, act, out, s.mid.data(), rows);
}

template <class Backend>
void TransformerLayer<Backend>::store_kv(const T* P, const DecodeWeights& W, KVCache& cache, DecodeScratch<Backend>& s,
                                         const T* x, int64_t B, int64_t n, int64_t start, const RopeTable& rope) const {
  const int64_t rows = B * n, I = inner();
  s.resize(rows, C);
  be->layernorm_forward(s.ln.data(), s.mean.data(), s.rstd.data(), x, P + ln1.weight, P + ln1.bias, rows, C,
                        kLayerNormEps);
  qkv.forward_decode(*be, W, P, s.ln.data(), s.qkv.data(), rows);
  be->rope_rotate(s.qkv.data() + I, B, n, n * 3 * I, 3 * I, n_head, rope, start, false);  // k only
  be->attention_cached_store(cache, s.qkv.data(), B, n, start);
}

}  // namespace starflow::core
