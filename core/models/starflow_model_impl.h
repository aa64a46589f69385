// FlowModel's definitions (the stack, the loss and its gradient), included by each backend's instantiation.
#pragma once
#include <cmath>
#include <string>

#include "core/models/meta_block_impl.h"
#include "core/models/self_denoiser_impl.h"
#include "core/models/starflow_model.h"
#include "core/random.h"

namespace starflow::core {

template <class Backend>
FlowModel<Backend>::FlowModel(const FlowConfig& cfg, Communicator* tp, bool split_shallow)
    : cfg_(cfg), tp_(tp), be_(std::make_unique<Backend>()) {
  cfg_.validate();
  for (int64_t k = 0; k < cfg_.num_blocks; ++k) blocks_.emplace_back(*be_, cfg_, k, layout_, tp, split_shallow);
  // Under tensor parallelism the denoiser is replicated, as the shallow blocks are without split_shallow: every
  // TP rank computes it whole on the group's shared batch, so its gradients agree without communication.
  if (cfg_.learnable_self_denoiser) denoiser_ = std::make_unique<SelfDenoiser<Backend>>(*be_, cfg_, layout_);
  Backend::resize(params_, layout_.total_size());
  Backend::resize(grads_, layout_.total_size());
  be_->fill(params_.data(), T(0), layout_.total_size());
  be_->fill(grads_.data(), T(0), layout_.total_size());
  rope_plain_ = be_->rope_table(cfg_, /*with_text=*/false);
  if (cfg_.conditional()) rope_text_ = be_->rope_table(cfg_, /*with_text=*/true);
}

template <class Backend>
FlowModel<Backend>::FlowModel(FlowModel&&) noexcept = default;
template <class Backend>
FlowModel<Backend>::~FlowModel() = default;

template <class Backend>
void FlowModel<Backend>::zero_gradients() {
  be_->fill(grads_.data(), T(0), layout_.total_size());
}

template <class Backend>
void FlowModel<Backend>::init_parameters(uint64_t seed) {
  Rng rng(seed);
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  ++version_;
  be_->fill(params_.data(), T(0), layout_.total_size());
  // Each tensor is drawn whole on the host, in registration order, and this rank keeps its shard: every
  // tensor-parallel layout (and every backend) starts from the same weights as one process.
  std::vector<T> whole, local;
  for (const ParameterView& v : layout_.views()) {
    whole.assign(static_cast<size_t>(numel(v.global_shape)), T(0));
    const bool norm = v.name.find(".norm.") != std::string::npos;
    // RMSNorm gains g are zero-initialised (the effective gain is 1 + g): the final, post- and QK-norms, and the
    // pre-norms with norm_type rms_norm.
    const bool rms_gain = ends_with(v.name, "final_norm.weight") || ends_with(v.name, "post_norm.weight") ||
                          ends_with(v.name, "query_norm.weight") || ends_with(v.name, "key_norm.weight") ||
                          (norm && cfg_.norm_type == NormType::kRmsNorm);
    if (ends_with(v.name, "sos_embed")) {
      for (T& x : whole) x = T(rng.normal());
    } else if (rms_gain) {
      // zero
    } else if (norm) {
      if (ends_with(v.name, ".weight")) std::fill(whole.begin(), whole.end(), T(1));
    } else if (ends_with(v.name, "proj_out.weight")) {
      // zero: every block starts as a near-constant affine map
    } else {
      // Linear weight [out, in] or bias [out]: U(±1/√fan_in), fan_in from the layer's weight.
      const std::string weight_name = v.name.substr(0, v.name.rfind('.')) + ".weight";
      const int64_t fan_in = layout_.at(weight_name).global_shape.back();
      const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
      for (T& x : whole) x = T(rng.uniform(-bound, bound));
    }
    local.resize(static_cast<size_t>(v.size));
    extract_shard(v, whole.data(), local.data());
    be_->upload(params_.data() + v.offset, local.data(), v.size);
  }
}

template <class Backend>
LossParts FlowModel<Backend>::forward(const T* x, const T* y, int64_t B, double latent_norm_lambda) {
  const Backend& be = *be_;
  const int64_t K = cfg_.num_blocks, n = B * cfg_.tokens() * cfg_.token_dim();
  const int64_t C = cfg_.in_channels, H = cfg_.img_size, p = cfg_.patch_size;
  batch_ = B;
  lambda_ = latent_norm_lambda;
  y_ = y;
  acts_.resize(K);
  for (auto& a : acts_) a.recompute = recompute_;
  outputs_.resize(K + 1);
  logdets_.resize(K);
  for (auto& o : outputs_) Backend::resize(o, n);
  for (auto& l : logdets_) Backend::resize(l, n);
  be.patchify(outputs_[0].data(), x, B, C, H, H, p);
  for (int64_t k = 0; k < K; ++k)
    blocks_[k].forward(params_.data(), acts_[k], outputs_[k].data(), y, outputs_[k + 1].data(), logdets_[k].data(), B,
                       rope_table(blocks_[k].conditioned()));
  Backend::resize(z_, n);
  be.unpatchify(z_.data(), outputs_[K].data(), B, C, H, H, p);

  // Means accumulate in double whatever T is (the loss is a sum of many small terms).
  LossParts loss;
  loss.z = 0.5 * be.sum_squares(z_.data(), n) / n;
  for (int64_t k = 0; k < K; ++k) loss.logdet -= be.sum(logdets_[k].data(), n) / n;
  for (int64_t k = 0; k < K; ++k) loss.latent_norm += be.sum_squares(outputs_[k].data(), n) / n;
  loss.nll = loss.z + loss.logdet;
  loss.total = loss.nll + latent_norm_lambda * loss.latent_norm;
  return loss;
}

template <class Backend>
void FlowModel<Backend>::backward(T* dx, bool parameter_gradients, GradientReadyObserver* ready) {
  const Backend& be = *be_;
  const int64_t K = cfg_.num_blocks, B = batch_, n = B * cfg_.tokens() * cfg_.token_dim();
  const int64_t C = cfg_.in_channels, H = cfg_.img_size, p = cfg_.patch_size;
  Backend::resize(d_out_, n);
  Backend::resize(d_in_, n);
  // ½·mean(z²) over all B·N elements; the final z is not regularised.
  be.divide(d_out_.data(), outputs_[K].data(), double(n), n);
  for (int64_t k = K; k-- > 0;) {
    blocks_[k].backward(params_.data(), parameter_gradients ? grads_.data() : nullptr, acts_[k], scratch_,
                        d_out_.data(), -1.0 / n, d_in_.data(), B, rope_table(blocks_[k].conditioned()), ready);
    if (lambda_ != 0) be.axpy(d_in_.data(), 2.0 * lambda_ / n, outputs_[k].data(), n);
    std::swap(d_out_, d_in_);
  }
  if (dx) be.unpatchify(dx, d_out_.data(), B, C, H, H, p);
}

template <class Backend>
double FlowModel<Backend>::denoiser_forward(const T* x, const T* y, const T* target, int64_t B) {
  if (!denoiser_) throw std::logic_error("denoiser_forward: the model has no learnable self-denoiser");
  const Backend& be = *be_;
  const int64_t n = B * cfg_.tokens() * cfg_.token_dim();
  const int64_t C = cfg_.in_channels, H = cfg_.img_size, p = cfg_.patch_size;
  den_batch_ = B;
  for (auto* b : {&den_u_, &den_tokens_, &den_pred_}) Backend::resize(*b, n);
  // Raster order, no permutation; the text prefix only with conditional_denoiser.
  be.patchify(den_u_.data(), x, B, C, H, H, p);
  denoiser_->forward(params_.data(), den_u_.data(), y, den_tokens_.data(), B,
                     rope_table(denoiser_->conditioned()));
  be.unpatchify(den_pred_.data(), den_tokens_.data(), B, C, H, H, p);
  if (!target) return 0;
  Backend::resize(den_diff_, n);
  be.copy(den_diff_.data(), den_pred_.data(), n);
  be.axpy(den_diff_.data(), -1.0, target, n);
  return be.sum_squares(den_diff_.data(), n) / n;
}

template <class Backend>
void FlowModel<Backend>::denoiser_backward() {
  const Backend& be = *be_;
  const int64_t B = den_batch_, n = B * cfg_.tokens() * cfg_.token_dim();
  const int64_t C = cfg_.in_channels, H = cfg_.img_size, p = cfg_.patch_size;
  // ∂mean((pred − target)²)/∂pred = 2(pred − target)/n, in token layout for the network.
  be.scale(den_diff_.data(), 2.0 / n, n);
  be.patchify(den_tokens_.data(), den_diff_.data(), B, C, H, H, p);
  denoiser_->backward(params_.data(), grads_.data(), den_tokens_.data(), B, rope_table(denoiser_->conditioned()));
}

template <class Backend>
int64_t FlowModel<Backend>::activation_bytes() const {
  int64_t bytes = 0;
  auto add = [&](const auto& buffer) { bytes += static_cast<int64_t>(buffer.size() * sizeof(*buffer.data())); };
  auto add_layer = [&](const LayerActivations<Backend>& l) {
    for (const auto* b : {&l.input, &l.ln1, &l.qkv, &l.qkv_full, &l.qk_raw, &l.qk_normed, &l.qkv_split, &l.probs, &l.attn,
                          &l.attn_proj, &l.mid, &l.ln2, &l.fc1, &l.up, &l.gelu, &l.mlp_out})
      add(*b);
    for (const auto* b : {&l.ln1_mean, &l.ln1_rstd, &l.ln2_mean, &l.ln2_rstd, &l.qk_rrms, &l.post_attn_rrms,
                          &l.post_mlp_rrms})
      add(*b);
  };
  for (const BlockActivations<Backend>& a : acts_) {
    for (const auto* b : {&a.v, &a.inp, &a.final_out, &a.h_img, &a.h_norm, &a.o, &a.o_raw, &a.z, &a.emb}) add(*b);
    add(a.rrms);
    for (const auto& l : a.layers) add_layer(l);
    if (a.recompute) add_layer(a.work);
  }
  for (const auto& o : outputs_) add(o);
  for (const auto& l : logdets_) add(l);
  return bytes;
}

template <class Backend>
std::vector<double> FlowModel<Backend>::per_sample_nll() const {
  const Backend& be = *be_;
  const int64_t B = batch_, per = cfg_.tokens() * cfg_.token_dim();
  std::vector<double> nll(B, 0.0);
  for (int64_t b = 0; b < B; ++b) {
    const double zz = be.sum_squares(z_.data() + b * per, per);
    double ld = 0;
    for (const auto& l : logdets_) ld = be.sum(l.data() + b * per, per, ld);
    nll[b] = 0.5 * zz / per - ld / per;
  }
  return nll;
}

}  // namespace starflow::core
