// MetaBlock's definitions, included by each backend's instantiation. The sequence buffer is [B, L + T, C] with
// the text prefix first; the text and image parts are embedded separately and interleaved per sample.
#pragma once
#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/models/meta_block.h"
#include "core/models/transformer_layer_impl.h"

namespace starflow::core {

template <class Backend>
MetaBlock<Backend>::MetaBlock(const Backend& backend, const FlowConfig& cfg, int64_t index, ParameterLayout& layout,
                              Communicator* tp, bool split_shallow)
    : be_(&backend), index_(index), flip_(cfg.block_flips(index)), conditioned_(cfg.block_is_conditioned(index)),
      final_norm_(cfg.use_final_norm), identity_(cfg.block_is_identity(index)),
      head_{cfg.soft_clip, cfg.use_softplus} {
  p_.T = cfg.tokens();
  p_.D = cfg.token_dim();
  p_.C = cfg.block_channels(index);
  p_.E = cfg.txt_dim;
  p_.L = conditioned_ && !identity_ ? cfg.txt_size : 0;
  if (identity_) {  // the official IdentityBlock: no parameters
    conditioned_ = final_norm_ = false;
    return;
  }
  const int64_t C = p_.C, D = p_.D;
  const std::string pre = "blocks." + std::to_string(index) + ".";
  // Registration order follows the official module (named_parameters order).
  if (cfg.sos) p_.sos = layout.add(pre + "sos_embed", {1, 1, D});
  p_.proj_in_w = layout.add(pre + "proj_in.weight", {C, D});
  p_.proj_in_b = layout.add(pre + "proj_in.bias", {C});
  p_.proj_out_w = layout.add(pre + "proj_out.weight", {2 * D, C});
  p_.proj_out_b = layout.add(pre + "proj_out.bias", {2 * D});
  if (conditioned_) {
    p_.proj_txt_w = layout.add(pre + "proj_txt.weight", {C, p_.E});
    p_.proj_txt_b = layout.add(pre + "proj_txt.bias", {C});
  }
  const bool split = tp && tp->size() > 1 && (index == cfg.num_blocks - 1 || split_shallow);
  const int parts = split ? tp->size() : 1, part = split ? tp->rank() : 0;
  const LayerOptions options = LayerOptions::of_block(cfg, index);
  if (split && (options.heads % parts != 0 || options.kv_heads % parts != 0))
    throw std::invalid_argument("tensor-parallel width " + std::to_string(parts) + " does not divide the " +
                                std::string(index == cfg.num_blocks - 1 ? "deep" : "shallow") + " block's " +
                                std::to_string(options.heads) + " attention heads (" + std::to_string(options.kv_heads) +
                                " key/value heads)");
  for (int64_t l = 0; l < cfg.layers_per_block[index]; ++l)
    layers_.push_back(TransformerLayer<Backend>::add_to(backend, layout, pre + "attn_blocks." + std::to_string(l) + ".",
                                                        options, split ? tp : nullptr, part, parts));
  if (final_norm_) p_.final_norm_w = layout.add(pre + "final_norm.weight", {C});
}

template <class Backend>
void MetaBlock<Backend>::forward(const T* P, BlockActivations<Backend>& a, const T* u, const T* y, T* out, T* logdet,
                                 int64_t B, const RopeTable& rope) const {
  const Backend& be = *be_;
  const int64_t Tn = p_.T, D = p_.D, C = p_.C, L = p_.L, S = L + Tn, btd = B * Tn * D;
  if (identity_) {  // output = input, logdet 0
    be.copy(out, u, btd);
    be.fill(logdet, T(0), btd);
    return;
  }
  Backend::resize(a.v, btd);
  Backend::resize(a.inp, btd);
  Backend::resize(a.final_out, B * S * C);
  Backend::resize(a.h_img, B * Tn * C);
  Backend::resize(a.h_norm, B * Tn * C);
  Backend::resize(a.rrms, B * Tn);
  Backend::resize(a.o, B * Tn * 2 * D);
  if (!has_sos()) {
    Backend::resize(a.o_raw, B * Tn * 2 * D);
    Backend::resize(a.zero_row, 2 * D);
    be.fill(a.zero_row.data(), T(0), 2 * D);
  }
  Backend::resize(a.z, btd);
  Backend::resize(a.emb, B * std::max(Tn, L) * C);
  a.layers.resize(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (!a.recompute) {
      a.layers[l].resize(layers_[l], B, S);
      continue;
    }
    if (!a.layers[l].qkv.empty()) a.layers[l] = LayerActivations<Backend>{};  // drop what recompute does not keep
    Backend::resize(a.layers[l].input, B * S * C);
  }
  a.y = conditioned_ ? y : nullptr;

  be.permute_tokens(a.v.data(), u, B, Tn, D, flip_);
  // SOS shift: position t sees v_{<t}; the first input is the learned start vector (data space). Without SOS
  // position t sees v_{≤t}, and the outputs are shifted below instead.
  if (has_sos()) be.sos_shift(a.inp.data(), P + p_.sos, a.v.data(), B, Tn, D);
  else be.copy(a.inp.data(), a.v.data(), btd);
  // Embed: image tokens through proj_in, text through proj_txt, interleaved as [text; image] per sample,
  // straight into the first layer's saved input.
  T* seq = a.layers[0].input.data();
  be.linear_forward(a.emb.data(), a.inp.data(), P + p_.proj_in_w, P + p_.proj_in_b, B * Tn, D, C);
  be.copy_strided(seq + L * C, S * C, a.emb.data(), Tn * C, B, Tn * C);
  if (conditioned_) {
    be.linear_forward(a.emb.data(), y, P + p_.proj_txt_w, P + p_.proj_txt_b, B * L, p_.E, C);
    be.copy_strided(seq, S * C, a.emb.data(), L * C, B, L * C);
  }
  // Each layer writes the next layer's saved input (the last one final_out): no copies, nothing reused
  // that backward still needs.
  for (size_t l = 0; l < layers_.size(); ++l) {
    T* dst = l + 1 < layers_.size() ? a.layers[l + 1].input.data() : a.final_out.data();
    layers_[l].forward(P, a.recompute ? a.work : a.layers[l], a.layers[l].input.data(), dst, B, S, rope);
  }
  // Head on the image positions only (the text part is discarded).
  be.copy_strided(a.h_img.data(), Tn * C, a.final_out.data() + L * C, S * C, B, Tn * C);
  const T* h = a.h_img.data();
  if (final_norm_) {
    be.rmsnorm_forward(a.h_norm.data(), a.rrms.data(), a.h_img.data(), P + p_.final_norm_w, B * Tn, C, kRmsNormEps);
    h = a.h_norm.data();
  }
  if (has_sos()) {
    be.linear_forward(a.o.data(), h, P + p_.proj_out_w, P + p_.proj_out_b, B * Tn, C, 2 * D);
  } else {  // o ← [0, o₀..o_{T−2}]: the shift with a zero start vector
    be.linear_forward(a.o_raw.data(), h, P + p_.proj_out_w, P + p_.proj_out_b, B * Tn, C, 2 * D);
    be.sos_shift(a.o.data(), a.zero_row.data(), a.o_raw.data(), B, Tn, 2 * D);
  }
  be.flow_head_forward(a.z.data(), logdet, a.o.data(), a.v.data(), B * Tn, D, head_);
  be.permute_tokens(out, a.z.data(), B, Tn, D, flip_);
}

template <class Backend>
void MetaBlock<Backend>::backward(const T* P, T* G, const BlockActivations<Backend>& a, BlockScratch<Backend>& s,
                                  const T* dout, double dlogdet, T* du, int64_t B, const RopeTable& rope,
                                  GradientReadyObserver* ready) const {
  const Backend& be = *be_;
  const int64_t Tn = p_.T, D = p_.D, C = p_.C, L = p_.L, S = L + Tn, btd = B * Tn * D;
  auto grad = [G](int64_t offset) { return G ? G + offset : nullptr; };  // G == nullptr: input gradient only
  if (identity_) return be.copy(du, dout, btd);
  Backend::resize(s.dz_perm, btd);
  Backend::resize(s.dv, btd);
  Backend::resize(s.d_o, B * Tn * 2 * D);
  Backend::resize(s.d_h_norm, B * Tn * C);
  Backend::resize(s.d_h_img, B * Tn * C);
  Backend::resize(s.d_seq_a, B * S * C);
  be.fill(s.d_seq_a.data(), T(0), B * S * C);
  Backend::resize(s.d_seq_b, B * S * C);
  Backend::resize(s.d_emb, B * std::max(Tn, L) * C);
  Backend::resize(s.d_inp, btd);

  be.permute_tokens(s.dz_perm.data(), dout, B, Tn, D, flip_);
  be.flow_head_backward(s.d_o.data(), s.dv.data(), s.dz_perm.data(), dlogdet, a.o.data(), a.v.data(), B * Tn, D, head_);
  const T* d_o = s.d_o.data();
  if (!has_sos()) {  // undo the output shift: o_raw[t] fed the head at position t + 1
    Backend::resize(s.d_o_raw, B * Tn * 2 * D);
    be.fill(s.d_o_raw.data(), T(0), B * Tn * 2 * D);
    be.sos_shift_backward(s.d_o_raw.data(), nullptr, s.d_o.data(), B, Tn, 2 * D);
    d_o = s.d_o_raw.data();
  }
  const T* h = final_norm_ ? a.h_norm.data() : a.h_img.data();
  T* d_h = final_norm_ ? s.d_h_norm.data() : s.d_h_img.data();
  be.linear_backward(d_h, grad(p_.proj_out_w), grad(p_.proj_out_b), d_o, h, P + p_.proj_out_w, B * Tn, C, 2 * D);
  if (final_norm_)
    be.rmsnorm_backward(s.d_h_img.data(), grad(p_.final_norm_w), s.d_h_norm.data(), a.h_img.data(), a.rrms.data(),
                        P + p_.final_norm_w, B * Tn, C);
  if (ready && G) {
    ready->gradient_ready(p_.proj_out_w);
    ready->gradient_ready(p_.proj_out_b);
    if (final_norm_) ready->gradient_ready(p_.final_norm_w);
  }
  // Text rows get no gradient from the head.
  be.copy_strided(s.d_seq_a.data() + L * C, S * C, s.d_h_img.data(), Tn * C, B, Tn * C);
  // Layers in reverse, ping-ponging between the two scratch buffers.
  T* d_cur = s.d_seq_a.data();
  T* d_next = s.d_seq_b.data();
  for (size_t l = layers_.size(); l-- > 0;) {
    if (a.recompute) {  // this layer's activations again, from its saved input (its output is discarded)
      Backend::resize(a.recompute_out, B * S * C);
      layers_[l].forward(P, a.work, a.layers[l].input.data(), a.recompute_out.data(), B, S, rope);
    }
    layers_[l].backward(P, G, a.recompute ? a.work : a.layers[l], s.layer, d_cur, d_next, B, S, rope);
    if (ready && G)
      for (int64_t offset : layers_[l].offsets()) ready->gradient_ready(offset);
    std::swap(d_cur, d_next);
  }
  // Embeddings.
  if (conditioned_ && G) {
    be.copy_strided(s.d_emb.data(), L * C, d_cur, S * C, B, L * C);
    be.linear_backward(nullptr, grad(p_.proj_txt_w), grad(p_.proj_txt_b), s.d_emb.data(), a.y, P + p_.proj_txt_w,
                       B * L, p_.E, C);
  }
  be.copy_strided(s.d_emb.data(), Tn * C, d_cur + L * C, S * C, B, Tn * C);
  be.linear_backward(s.d_inp.data(), grad(p_.proj_in_w), grad(p_.proj_in_b), s.d_emb.data(), a.inp.data(),
                     P + p_.proj_in_w, B * Tn, D, C);
  // Undo the SOS shift: input position 0 is the start vector, position t ≥ 1 is v_{t−1} (without SOS: v_t).
  if (has_sos()) be.sos_shift_backward(s.dv.data(), grad(p_.sos), s.d_inp.data(), B, Tn, D);
  else be.axpy(s.dv.data(), 1.0, s.d_inp.data(), btd);
  if (ready && G) {
    if (conditioned_) {
      ready->gradient_ready(p_.proj_txt_w);
      ready->gradient_ready(p_.proj_txt_b);
    }
    ready->gradient_ready(p_.proj_in_w);
    ready->gradient_ready(p_.proj_in_b);
    if (has_sos()) ready->gradient_ready(p_.sos);
  }
  be.permute_tokens(du, s.dv.data(), B, Tn, D, flip_);
}

template <class Backend>
void MetaBlock<Backend>::run_cached_layers(const T* P, DecodeState<Backend>& st,
                                           std::vector<typename Backend::KVCache>& caches, int64_t B, int64_t n,
                                           int64_t pos, const RopeTable& rope, bool outputs) const {
  Backend::grow(st.seq_b, static_cast<size_t>(B * n * p_.C));
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (!outputs && l + 1 == layers_.size()) {
      layers_[l].store_kv(P, st.weights, caches[l], st.scratch, st.seq_a.data(), B, n, pos, rope);
      return;
    }
    layers_[l].forward_cached(P, st.weights, caches[l], st.scratch, st.seq_a.data(), st.seq_b.data(), B, n, pos, rope,
                              st.attention_temperature);
    std::swap(st.seq_a, st.seq_b);
  }
}

template <class Backend>
void MetaBlock<Backend>::begin_decode(const T* P, DecodeState<Backend>& st, const T* y, int64_t B,
                                      const RopeTable& rope) const {
  const Backend& be = *be_;
  st.batch = B;
  st.caches.resize(layers_.size());
  for (auto& c : st.caches) be.reset_cache(c, B, layers_[0].n_kv_head, layers_[0].head_dim, seq_len());
  if (!conditioned_ || be.begin_decode(*this, P, st, y, B, rope)) return;
  // The text's outputs are never read, only its keys and values: the last layer stops at storing them.
  Backend::grow(st.seq_a, static_cast<size_t>(B * p_.L * p_.C));
  be.decode_linear(st.seq_a.data(), y, st.weights.data + p_.proj_txt_w, P + p_.proj_txt_b, B * p_.L, p_.E, p_.C,
                   st.weights.layout);
  run_cached_layers(P, st, st.caches, B, p_.L, 0, rope, /*outputs=*/false);
}

template <class Backend>
void MetaBlock<Backend>::decode_chunk(const T* P, DecodeState<Backend>& st, const T* inp, int64_t start, int64_t n,
                                      T* sigma, T* mu, const RopeTable& rope) const {
  const Backend& be = *be_;
  if (be.decode_chunk(*this, P, st, inp, start, n, sigma, mu, rope)) return;
  const int64_t B = st.batch, rows = B * n, C = p_.C, D = p_.D;
  const auto& W = st.weights;
  Backend::grow(st.seq_a, static_cast<size_t>(rows * C));
  be.decode_linear(st.seq_a.data(), inp, W.data + p_.proj_in_w, P + p_.proj_in_b, rows, D, C, W.layout);
  run_cached_layers(P, st, st.caches, B, n, p_.L + start, rope);
  const T* h = st.seq_a.data();
  if (final_norm_) {
    Backend::grow(st.h_norm, static_cast<size_t>(rows * C));
    Backend::grow(st.rrms, static_cast<size_t>(rows));
    be.rmsnorm_forward(st.h_norm.data(), st.rrms.data(), h, P + p_.final_norm_w, rows, C, kRmsNormEps);
    h = st.h_norm.data();
  }
  Backend::grow(st.o, static_cast<size_t>(rows * 2 * D));
  be.decode_linear(st.o.data(), h, W.data + p_.proj_out_w, P + p_.proj_out_b, rows, C, 2 * D, W.layout);
  be.flow_head_sigma_mu(sigma, mu, st.o.data(), rows, D, head_);
}

}  // namespace starflow::core
