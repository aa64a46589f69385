// MetaBlock forward/backward. The sequence buffer is [B, L + T, C] with the text prefix first; the text and
// image parts are embedded separately and interleaved per sample.
#include "core/models/meta_block.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "core/ops/cpu/linear.h"
#include "core/ops/cpu/rmsnorm.h"
#include "core/ops/cpu/tokens.h"

namespace starflow::core {
namespace {
constexpr double kRmsNormEps = 1e-6;

// Copies rows [row0, row0 + n) of every sample of a [B, S, C] buffer to/from a dense [B, n, C] buffer.
template <class T>
void gather_rows(T* dense, const T* seq, int64_t B, int64_t S, int64_t row0, int64_t n, int64_t C) {
  for (int64_t b = 0; b < B; ++b) std::memcpy(dense + b * n * C, seq + (b * S + row0) * C, sizeof(T) * n * C);
}
template <class T>
void scatter_rows(T* seq, const T* dense, int64_t B, int64_t S, int64_t row0, int64_t n, int64_t C) {
  for (int64_t b = 0; b < B; ++b) std::memcpy(seq + (b * S + row0) * C, dense + b * n * C, sizeof(T) * n * C);
}
}  // namespace

template <class T>
MetaBlock<T>::MetaBlock(const FlowConfig& cfg, int64_t index, ParameterLayout& layout, Communicator* tp,
                        bool split_shallow)
    : index_(index), T_(cfg.tokens()), D_(cfg.token_dim()), C_(cfg.channels), L_(0), E_(cfg.txt_dim),
      flip_(cfg.block_flips(index)), conditioned_(cfg.block_is_conditioned(index)),
      final_norm_(cfg.use_final_norm), head_{cfg.soft_clip, cfg.use_softplus} {
  if (conditioned_) L_ = cfg.txt_size;
  const std::string pre = "blocks." + std::to_string(index) + ".";
  // Registration order follows the official module (named_parameters order).
  sos_ = layout.add(pre + "sos_embed", {1, 1, D_});
  proj_in_w_ = layout.add(pre + "proj_in.weight", {C_, D_});
  proj_in_b_ = layout.add(pre + "proj_in.bias", {C_});
  proj_out_w_ = layout.add(pre + "proj_out.weight", {2 * D_, C_});
  proj_out_b_ = layout.add(pre + "proj_out.bias", {2 * D_});
  if (conditioned_) {
    proj_txt_w_ = layout.add(pre + "proj_txt.weight", {C_, E_});
    proj_txt_b_ = layout.add(pre + "proj_txt.bias", {C_});
  }
  const bool split = tp && tp->size() > 1 && (index == cfg.num_blocks - 1 || split_shallow);
  const int parts = split ? tp->size() : 1, part = split ? tp->rank() : 0;
  if (split && (cfg.num_heads() % parts != 0))
    throw std::invalid_argument("tensor-parallel width " + std::to_string(parts) + " does not divide the " +
                                std::string(index == cfg.num_blocks - 1 ? "deep" : "shallow") + " block's " +
                                std::to_string(cfg.num_heads()) + " attention heads (channels " +
                                std::to_string(C_) + " / head_dim " + std::to_string(cfg.head_dim) + ")");
  for (int64_t l = 0; l < cfg.layers_per_block[index]; ++l) {
    TransformerLayer<T> layer;
    layer.p = LayerParams::add_to(layout, pre + "attn_blocks." + std::to_string(l) + ".", C_, part, parts);
    layer.C = C_;
    layer.head_dim = cfg.head_dim;
    layer.n_head = cfg.num_heads() / parts;
    layer.hidden = 4 * C_ / parts;
    layer.tp = split ? tp : nullptr;
    layers_.push_back(layer);
  }
  if (final_norm_) final_norm_w_ = layout.add(pre + "final_norm.weight", {C_});
}

template <class T>
void MetaBlock<T>::forward(const T* P, BlockActivations<T>& a, const T* u, const T* y, T* out, T* logdet, int64_t B,
                           const cpu::RopeTable<T>& rope) const {
  const int64_t S = L_ + T_, btd = B * T_ * D_;
  a.v.resize(btd);
  a.inp.resize(btd);
  a.final_out.resize(B * S * C_);
  a.h_img.resize(B * T_ * C_);
  a.h_norm.resize(B * T_ * C_);
  a.rrms.resize(B * T_);
  a.o.resize(B * T_ * 2 * D_);
  a.z.resize(btd);
  a.emb.resize(B * std::max(T_, L_) * C_);
  a.layers.resize(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l)
    a.layers[l].resize(B, S, C_, layers_[l].inner(), layers_[l].hidden, layers_[l].n_head);
  a.y = conditioned_ ? y : nullptr;

  cpu::permute_tokens(a.v.data(), u, B, T_, D_, flip_);
  // SOS shift: position t sees v_{<t}; the first input is the learned start vector (data space).
  for (int64_t b = 0; b < B; ++b) {
    std::memcpy(a.inp.data() + b * T_ * D_, P + sos_, sizeof(T) * D_);
    std::memcpy(a.inp.data() + (b * T_ + 1) * D_, a.v.data() + b * T_ * D_, sizeof(T) * (T_ - 1) * D_);
  }
  // Embed: image tokens through proj_in, text through proj_txt, interleaved as [text; image] per sample,
  // straight into the first layer's saved input.
  T* seq = a.layers[0].input.data();
  cpu::linear_forward(a.emb.data(), a.inp.data(), P + proj_in_w_, P + proj_in_b_, B * T_, D_, C_);
  scatter_rows(seq, a.emb.data(), B, S, L_, T_, C_);
  if (conditioned_) {
    cpu::linear_forward(a.emb.data(), y, P + proj_txt_w_, P + proj_txt_b_, B * L_, E_, C_);
    scatter_rows(seq, a.emb.data(), B, S, 0, L_, C_);
  }
  // Each layer writes the next layer's saved input (the last one final_out): no copies, nothing reused
  // that backward still needs.
  for (size_t l = 0; l < layers_.size(); ++l) {
    T* dst = l + 1 < layers_.size() ? a.layers[l + 1].input.data() : a.final_out.data();
    layers_[l].forward(P, a.layers[l], a.layers[l].input.data(), dst, B, S, rope);
  }
  // Head on the image positions only (the text part is discarded).
  gather_rows(a.h_img.data(), a.final_out.data(), B, S, L_, T_, C_);
  const T* h = a.h_img.data();
  if (final_norm_) {
    cpu::rmsnorm_forward(a.h_norm.data(), a.rrms.data(), a.h_img.data(), P + final_norm_w_, B * T_, C_,
                         T(kRmsNormEps));
    h = a.h_norm.data();
  }
  cpu::linear_forward(a.o.data(), h, P + proj_out_w_, P + proj_out_b_, B * T_, C_, 2 * D_);
  cpu::flow_head_forward(a.z.data(), logdet, a.o.data(), a.v.data(), B * T_, D_, head_);
  cpu::permute_tokens(out, a.z.data(), B, T_, D_, flip_);
}

template <class T>
void MetaBlock<T>::backward(const T* P, T* G, const BlockActivations<T>& a, BlockScratch<T>& s, const T* dout,
                            T dlogdet, T* du, int64_t B, const cpu::RopeTable<T>& rope,
                            GradientReadyObserver* ready) const {
  const int64_t S = L_ + T_, btd = B * T_ * D_;
  auto grad = [G](int64_t offset) { return G ? G + offset : nullptr; };  // G == nullptr: input gradient only
  s.dz_perm.resize(btd);
  s.dv.resize(btd);
  s.d_o.resize(B * T_ * 2 * D_);
  s.d_h_norm.resize(B * T_ * C_);
  s.d_h_img.resize(B * T_ * C_);
  s.d_seq_a.assign(B * S * C_, T(0));
  s.d_seq_b.resize(B * S * C_);
  s.d_emb.resize(B * std::max(T_, L_) * C_);
  s.d_inp.resize(btd);

  cpu::permute_tokens(s.dz_perm.data(), dout, B, T_, D_, flip_);
  cpu::flow_head_backward(s.d_o.data(), s.dv.data(), s.dz_perm.data(), dlogdet, a.o.data(), a.v.data(), B * T_, D_,
                          head_);
  const T* h = final_norm_ ? a.h_norm.data() : a.h_img.data();
  T* d_h = final_norm_ ? s.d_h_norm.data() : s.d_h_img.data();
  cpu::linear_backward(d_h, grad(proj_out_w_), grad(proj_out_b_), s.d_o.data(), h, P + proj_out_w_, B * T_, C_, 2 * D_);
  if (final_norm_)
    cpu::rmsnorm_backward(s.d_h_img.data(), grad(final_norm_w_), s.d_h_norm.data(), a.h_img.data(), a.rrms.data(),
                          P + final_norm_w_, B * T_, C_);
  if (ready && G) {
    ready->gradient_ready(proj_out_w_);
    ready->gradient_ready(proj_out_b_);
    if (final_norm_) ready->gradient_ready(final_norm_w_);
  }
  scatter_rows(s.d_seq_a.data(), s.d_h_img.data(), B, S, L_, T_, C_);  // text rows get no gradient from the head
  // Layers in reverse, ping-ponging between the two scratch buffers.
  T* d_cur = s.d_seq_a.data();
  T* d_next = s.d_seq_b.data();
  for (size_t l = layers_.size(); l-- > 0;) {
    layers_[l].backward(P, G, a.layers[l], s.layer, d_cur, d_next, B, S, rope);
    if (ready && G)
      for (int64_t offset : layers_[l].p.offsets()) ready->gradient_ready(offset);
    std::swap(d_cur, d_next);
  }
  // Embeddings.
  if (conditioned_ && G) {
    gather_rows(s.d_emb.data(), d_cur, B, S, 0, L_, C_);
    cpu::linear_backward<T>(nullptr, grad(proj_txt_w_), grad(proj_txt_b_), s.d_emb.data(), a.y, P + proj_txt_w_, B * L_,
                            E_, C_);
  }
  gather_rows(s.d_emb.data(), d_cur, B, S, L_, T_, C_);
  cpu::linear_backward(s.d_inp.data(), grad(proj_in_w_), grad(proj_in_b_), s.d_emb.data(), a.inp.data(), P + proj_in_w_,
                       B * T_, D_, C_);
  // Undo the SOS shift: input position 0 is the start vector, position t ≥ 1 is v_{t−1}.
  for (int64_t b = 0; b < B; ++b) {
    if (G)
      for (int64_t d = 0; d < D_; ++d) G[sos_ + d] += s.d_inp[b * T_ * D_ + d];
    for (int64_t t = 1; t < T_; ++t)
      for (int64_t d = 0; d < D_; ++d) s.dv[(b * T_ + t - 1) * D_ + d] += s.d_inp[(b * T_ + t) * D_ + d];
  }
  if (ready && G) {
    if (conditioned_) {
      ready->gradient_ready(proj_txt_w_);
      ready->gradient_ready(proj_txt_b_);
    }
    ready->gradient_ready(proj_in_w_);
    ready->gradient_ready(proj_in_b_);
    ready->gradient_ready(sos_);
  }
  cpu::permute_tokens(du, s.dv.data(), B, T_, D_, flip_);
}

template class MetaBlock<float>;
template class MetaBlock<double>;
template struct BlockActivations<float>;
template struct BlockActivations<double>;

}  // namespace starflow::core
