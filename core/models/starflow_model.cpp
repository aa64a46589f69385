// StarFlowModel: the stack, the loss and its gradient.
#include "core/models/starflow_model.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>

#include "core/ops/cpu/tokens.h"
#include "core/random.h"

namespace starflow::core {

template <class T>
StarFlowModel<T>::StarFlowModel(const FlowConfig& cfg, Communicator* tp, bool split_shallow)
    : cfg_(cfg), tp_(tp), tiled_(std::make_unique<TiledWeights>()) {
  cfg_.validate();
  for (int64_t k = 0; k < cfg_.num_blocks; ++k) blocks_.emplace_back(cfg_, k, layout_, tp, split_shallow);
  params_.assign(layout_.total_size(), T(0));
  grads_.assign(layout_.total_size(), T(0));
  const int64_t g = cfg_.grid();
  rope_plain_ = cpu::make_rope_table<T>(
      cpu::rope_angles(cfg_.head_dim, g, g, cfg_.rope_seq_len(), cfg_.conditional(), cfg_.txt_size, false),
      cfg_.head_dim);
  if (cfg_.conditional())
    rope_text_ = cpu::make_rope_table<T>(
        cpu::rope_angles(cfg_.head_dim, g, g, cfg_.rope_seq_len(), true, cfg_.txt_size, true), cfg_.head_dim);
}

template <class T>
struct StarFlowModel<T>::TiledWeights {
  std::mutex mutex;
  std::vector<T> data;
  std::vector<uint64_t> version;  // per block: the parameters' version its tiles were written from
};

template <class T>
StarFlowModel<T>::StarFlowModel(StarFlowModel&&) noexcept = default;
template <class T>
StarFlowModel<T>::~StarFlowModel() = default;

template <class T>
const T* StarFlowModel<T>::decode_weights(int64_t k) const {
  if (!MetaBlock<T>::tiles_decode_weights()) return nullptr;
  TiledWeights& t = *tiled_;
  const std::lock_guard<std::mutex> lock(t.mutex);
  if (t.data.size() != params_.size()) {
    t.data.assign(params_.size(), T(0));
    t.version.assign(blocks_.size(), std::numeric_limits<uint64_t>::max());
  }
  if (t.version[k] != version_) {
    blocks_[k].tile_decode_weights(params_.data(), t.data.data());
    t.version[k] = version_;
  }
  return t.data.data();
}

template <class T>
void StarFlowModel<T>::zero_gradients() {
  std::fill(grads_.begin(), grads_.end(), T(0));
}

template <class T>
void StarFlowModel<T>::init_parameters(uint64_t seed) {
  Rng rng(seed);
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  ++version_;
  std::fill(params_.begin(), params_.end(), T(0));
  // Each tensor is drawn whole, in registration order, and this rank keeps its shard: every tensor-parallel
  // layout starts from the same weights as one process.
  std::vector<T> whole;
  for (const ParameterView& v : layout_.views()) {
    whole.assign(static_cast<size_t>(numel(v.global_shape)), T(0));
    const bool norm = v.name.find(".norm.") != std::string::npos;
    if (ends_with(v.name, "sos_embed")) {
      for (T& x : whole) x = T(rng.normal());
    } else if (ends_with(v.name, "final_norm.weight")) {
      // zero: the effective RMSNorm gain is 1 + g
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
    extract_shard(v, whole.data(), params_.data() + v.offset);
  }
}

template <class T>
LossParts StarFlowModel<T>::forward(const T* x, const T* y, int64_t B, double latent_norm_lambda) {
  const int64_t K = cfg_.num_blocks, n = B * cfg_.tokens() * cfg_.token_dim();
  const int64_t C = cfg_.in_channels, H = cfg_.img_size, p = cfg_.patch_size;
  batch_ = B;
  lambda_ = latent_norm_lambda;
  y_ = y;
  acts_.resize(K);
  outputs_.resize(K + 1);
  logdets_.resize(K);
  for (auto& o : outputs_) o.resize(n);
  for (auto& l : logdets_) l.resize(n);
  cpu::patchify(outputs_[0].data(), x, B, C, H, H, p);
  for (int64_t k = 0; k < K; ++k)
    blocks_[k].forward(params_.data(), acts_[k], outputs_[k].data(), y, outputs_[k + 1].data(), logdets_[k].data(), B,
                       rope_table(blocks_[k].conditioned()));
  z_.resize(n);
  cpu::unpatchify(z_.data(), outputs_[K].data(), B, C, H, H, p);

  // Means accumulate in double whatever T is (the loss is a sum of many small terms).
  LossParts loss;
  double zz = 0;
  for (int64_t i = 0; i < n; ++i) zz += double(z_[i]) * z_[i];
  loss.z = 0.5 * zz / n;
  for (int64_t k = 0; k < K; ++k) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += logdets_[k][i];
    loss.logdet -= s / n;
  }
  for (int64_t k = 0; k < K; ++k) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += double(outputs_[k][i]) * outputs_[k][i];
    loss.latent_norm += s / n;
  }
  loss.nll = loss.z + loss.logdet;
  loss.total = loss.nll + latent_norm_lambda * loss.latent_norm;
  return loss;
}

template <class T>
void StarFlowModel<T>::backward(T* dx, bool parameter_gradients, GradientReadyObserver* ready) {
  const int64_t K = cfg_.num_blocks, B = batch_, n = B * cfg_.tokens() * cfg_.token_dim();
  const int64_t C = cfg_.in_channels, H = cfg_.img_size, p = cfg_.patch_size;
  // ½·mean(z²) over all B·N elements; the final z is not regularised.
  std::vector<T> d_out(n), d_in(n);
  for (int64_t i = 0; i < n; ++i) d_out[i] = outputs_[K][i] / T(n);
  const T dlogdet = T(-1.0 / n);
  const T reg = T(2.0 * lambda_ / n);
  for (int64_t k = K; k-- > 0;) {
    blocks_[k].backward(params_.data(), parameter_gradients ? grads_.data() : nullptr, acts_[k], scratch_, d_out.data(), dlogdet, d_in.data(), B,
                        rope_table(blocks_[k].conditioned()), ready);
    if (lambda_ != 0)
      for (int64_t i = 0; i < n; ++i) d_in[i] += reg * outputs_[k][i];
    std::swap(d_out, d_in);
  }
  if (dx) cpu::unpatchify(dx, d_out.data(), B, C, H, H, p);
}

template <class T>
std::vector<double> StarFlowModel<T>::per_sample_nll() const {
  const int64_t B = batch_, per = cfg_.tokens() * cfg_.token_dim();
  std::vector<double> nll(B, 0.0);
  for (int64_t b = 0; b < B; ++b) {
    double zz = 0, ld = 0;
    for (int64_t i = 0; i < per; ++i) zz += double(z_[b * per + i]) * z_[b * per + i];
    for (const auto& l : logdets_)
      for (int64_t i = 0; i < per; ++i) ld += l[b * per + i];
    nll[b] = 0.5 * zz / per - ld / per;
  }
  return nll;
}

template class StarFlowModel<float>;
template class StarFlowModel<double>;

}  // namespace starflow::core
