// SelfDenoiser's definitions, included by each backend's instantiation. The sequence is [B, L + T, C] with the
// text prefix first, as in the flow blocks.
#pragma once
#include <algorithm>
#include <string>
#include <utility>

#include "core/models/self_denoiser.h"
#include "core/models/transformer_layer_impl.h"

namespace starflow::core {

template <class Backend>
SelfDenoiser<Backend>::SelfDenoiser(const Backend& backend, const FlowConfig& cfg, ParameterLayout& layout)
    : be_(&backend) {
  T_ = cfg.tokens();
  D_ = cfg.token_dim();
  C_ = cfg.channels;  // the base width, even with top_block_channels
  L_ = cfg.conditional_denoiser ? cfg.txt_size : 0;
  E_ = cfg.txt_dim;
  const std::string pre = "learnable_self_denoiser.";
  proj_in_w_ = layout.add(pre + "proj_in.weight", {C_, D_});
  proj_in_b_ = layout.add(pre + "proj_in.bias", {C_});
  proj_out_w_ = layout.add(pre + "proj_out.weight", {D_, C_});
  proj_out_b_ = layout.add(pre + "proj_out.bias", {D_});
  if (L_ > 0) {
    proj_txt_w_ = layout.add(pre + "proj_txt.weight", {C_, E_});
    proj_txt_b_ = layout.add(pre + "proj_txt.bias", {C_});
  }
  LayerOptions o = LayerOptions::of_block(cfg, 0);  // the shallow blocks' switches and width
  o.causal = false;
  for (int64_t l = 0; l < kDenoiserLayers; ++l)
    layers_.push_back(TransformerLayer<Backend>::add_to(backend, layout, pre + "attn_blocks." + std::to_string(l) + ".",
                                                        o, nullptr, 0, 1));
  if (cfg.use_final_norm) final_norm_w_ = layout.add(pre + "final_norm.weight", {C_});
}

template <class Backend>
void SelfDenoiser<Backend>::forward(const T* P, const T* u, const T* y, T* pred, int64_t B, const RopeTable& rope) {
  const Backend& be = *be_;
  const int64_t Tn = T_, C = C_, L = L_, S = L + Tn;
  u_ = u;
  y_ = L > 0 ? y : nullptr;
  acts_.resize(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) acts_[l].resize(layers_[l], B, S);
  Backend::resize(emb_, B * std::max(Tn, L) * C);
  Backend::resize(final_out_, B * S * C);
  Backend::resize(h_img_, B * Tn * C);
  Backend::resize(h_norm_, B * Tn * C);
  Backend::resize(rrms_, B * Tn);
  T* seq = acts_[0].input.data();
  be.linear_forward(emb_.data(), u, P + proj_in_w_, P + proj_in_b_, B * Tn, D_, C);
  be.copy_strided(seq + L * C, S * C, emb_.data(), Tn * C, B, Tn * C);
  if (L > 0) {
    be.linear_forward(emb_.data(), y, P + proj_txt_w_, P + proj_txt_b_, B * L, E_, C);
    be.copy_strided(seq, S * C, emb_.data(), L * C, B, L * C);
  }
  for (size_t l = 0; l < layers_.size(); ++l) {
    T* dst = l + 1 < layers_.size() ? acts_[l + 1].input.data() : final_out_.data();
    layers_[l].forward(P, acts_[l], acts_[l].input.data(), dst, B, S, rope);
  }
  be.copy_strided(h_img_.data(), Tn * C, final_out_.data() + L * C, S * C, B, Tn * C);
  const T* h = h_img_.data();
  if (final_norm_w_ >= 0) {
    be.rmsnorm_forward(h_norm_.data(), rrms_.data(), h, P + final_norm_w_, B * Tn, C, kRmsNormEps);
    h = h_norm_.data();
  }
  // No soft clip and no flow head: the projection is the prediction.
  be.linear_forward(pred, h, P + proj_out_w_, P + proj_out_b_, B * Tn, C, D_);
}

template <class Backend>
void SelfDenoiser<Backend>::backward(const T* P, T* G, const T* dpred, int64_t B, const RopeTable& rope) {
  const Backend& be = *be_;
  const int64_t Tn = T_, C = C_, L = L_, S = L + Tn;
  for (auto* b : {&d_h_norm_, &d_h_img_}) Backend::resize(*b, B * Tn * C);
  for (auto* b : {&d_seq_a_, &d_seq_b_}) Backend::resize(*b, B * S * C);
  Backend::resize(d_emb_, B * std::max(Tn, L) * C);
  const bool norm = final_norm_w_ >= 0;
  be.linear_backward(norm ? d_h_norm_.data() : d_h_img_.data(), G + proj_out_w_, G + proj_out_b_, dpred,
                     norm ? h_norm_.data() : h_img_.data(), P + proj_out_w_, B * Tn, C, D_);
  if (norm)
    be.rmsnorm_backward(d_h_img_.data(), G + final_norm_w_, d_h_norm_.data(), h_img_.data(), rrms_.data(),
                        P + final_norm_w_, B * Tn, C);
  be.fill(d_seq_a_.data(), T(0), B * S * C);  // the text rows' outputs are not read
  be.copy_strided(d_seq_a_.data() + L * C, S * C, d_h_img_.data(), Tn * C, B, Tn * C);
  T* d_cur = d_seq_a_.data();
  T* d_next = d_seq_b_.data();
  for (size_t l = layers_.size(); l-- > 0;) {
    layers_[l].backward(P, G, acts_[l], scratch_, d_cur, d_next, B, S, rope);
    std::swap(d_cur, d_next);
  }
  if (L > 0) {
    be.copy_strided(d_emb_.data(), L * C, d_cur, S * C, B, L * C);
    be.linear_backward(nullptr, G + proj_txt_w_, G + proj_txt_b_, d_emb_.data(), y_, P + proj_txt_w_, B * L, E_, C);
  }
  be.copy_strided(d_emb_.data(), Tn * C, d_cur + L * C, S * C, B, Tn * C);
  be.linear_backward(nullptr, G + proj_in_w_, G + proj_in_b_, d_emb_.data(), u_, P + proj_in_w_, B * Tn, D_, C);
}

}  // namespace starflow::core
