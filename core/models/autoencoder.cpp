// AutoencoderModel: the two conv chains under `encoder.*` / `decoder.*` names, the reconstruction loss and its
// gradient; instantiated for the CPU backend.
#include "core/models/autoencoder.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "core/random.h"

namespace starflow::core {

namespace {

// norm → SiLU: the pre-activation that precedes every conv after the first (as in the SD VAE's blocks).
template <class Backend>
void add_norm_silu(ConvStack<Backend>& stack, const std::string& name, int64_t groups, ParameterLayout& layout) {
  stack.add_group_norm(name, groups, layout);
  stack.add_silu();
}

}  // namespace

template <class Backend>
AutoencoderModel<Backend>::AutoencoderModel(const AutoencoderConfig& cfg)
    : cfg_((cfg.validate(), cfg)),
      be_(std::make_unique<Backend>()),
      encoder_(*be_, cfg.image_channels, cfg.image_size, cfg.image_size),
      decoder_(*be_, cfg.latent_channels, cfg.latent_size(), cfg.latent_size()) {
  const auto& ch = cfg_.channels;
  const int64_t levels = static_cast<int64_t>(ch.size()) - 1, g = cfg_.norm_groups;

  encoder_.add_conv("encoder.conv_in", ch[0], 3, 1, layout_);
  for (int64_t i = 0; i < levels; ++i) {
    const std::string name = "encoder.down." + std::to_string(i);
    add_norm_silu(encoder_, name + ".norm", g, layout_);
    encoder_.add_conv(name + ".conv", ch[i + 1], 3, 2, layout_);
  }
  for (int64_t m = 0; m < cfg_.mid_layers; ++m) {
    const std::string name = "encoder.mid." + std::to_string(m);
    add_norm_silu(encoder_, name + ".norm", g, layout_);
    encoder_.add_conv(name + ".conv", ch[levels], 3, 1, layout_);
  }
  add_norm_silu(encoder_, "encoder.norm_out", g, layout_);
  encoder_.add_conv("encoder.conv_out", cfg_.latent_channels, 3, 1, layout_);

  decoder_.add_conv("decoder.conv_in", ch[levels], 3, 1, layout_);
  for (int64_t m = 0; m < cfg_.mid_layers; ++m) {
    const std::string name = "decoder.mid." + std::to_string(m);
    add_norm_silu(decoder_, name + ".norm", g, layout_);
    decoder_.add_conv(name + ".conv", ch[levels], 3, 1, layout_);
  }
  for (int64_t i = levels; i-- > 0;) {
    // Numbered in execution order (up.0 runs first, at the latent resolution).
    const std::string name = "decoder.up." + std::to_string(levels - 1 - i);
    add_norm_silu(decoder_, name + ".norm", g, layout_);
    decoder_.add_upsample2x();
    decoder_.add_conv(name + ".conv", ch[i], 3, 1, layout_);
  }
  add_norm_silu(decoder_, "decoder.norm_out", g, layout_);
  decoder_.add_conv("decoder.conv_out", cfg_.image_channels, 3, 1, layout_);

  Backend::resize(params_, layout_.total_size());
  Backend::resize(grads_, layout_.total_size());
  be_->fill(params_.data(), T(0), layout_.total_size());
  be_->fill(grads_.data(), T(0), layout_.total_size());
}

template <class Backend>
AutoencoderModel<Backend>::AutoencoderModel(AutoencoderModel&&) noexcept = default;
template <class Backend>
AutoencoderModel<Backend>::~AutoencoderModel() = default;

template <class Backend>
void AutoencoderModel<Backend>::set_latent_normalisation(double scaling_factor, double shift_factor) {
  AutoencoderConfig c = cfg_;
  c.scaling_factor = scaling_factor;
  c.shift_factor = shift_factor;
  c.validate();
  cfg_ = c;
}

template <class Backend>
void AutoencoderModel<Backend>::zero_gradients() {
  be_->fill(grads_.data(), T(0), layout_.total_size());
}

template <class Backend>
void AutoencoderModel<Backend>::init_parameters(uint64_t seed) {
  Rng rng(seed);
  be_->fill(params_.data(), T(0), layout_.total_size());
  std::vector<T> p;  // each tensor drawn on the host, then placed
  for (const ParameterView& v : layout_.views()) {
    p.assign(static_cast<size_t>(v.size), T(0));
    const bool norm = v.name.find("norm") != std::string::npos;
    if (norm) {
      if (v.name.ends_with(".weight")) std::fill(p.begin(), p.end(), T(1));
    } else {
      // Conv weight [out, in, k, k] or its bias: fan_in = in·k·k from the weight.
      const Shape& w = layout_.at(v.name.substr(0, v.name.rfind('.')) + ".weight").shape;
      const double bound = 1.0 / std::sqrt(static_cast<double>(w[1] * w[2] * w[3]));
      for (T& x : p) x = T(rng.uniform(-bound, bound));
    }
    be_->upload(params_.data() + v.offset, p.data(), v.size);
  }
}

template <class Backend>
AutoencoderLoss AutoencoderModel<Backend>::forward(const T* images, int64_t B, const AutoencoderLossWeights& weights) {
  batch_ = B;
  weights_ = weights;
  const int64_t n = B * cfg_.image_numel();
  encoder_.forward(params_.data(), images, B);
  decoder_.forward(params_.data(), encoder_.output().data(), B);

  // Sums in double whatever T is: the loss is a mean of many small terms.
  AutoencoderLoss loss;
  const auto [sq, abs] = be_->squared_and_absolute_error(decoder_.output().data(), images, n);
  loss.mse = sq / n;
  loss.l1 = abs / n;
  const Buffer& z = encoder_.output();
  loss.latent_l2 = be_->sum_squares(z.data(), static_cast<int64_t>(z.size())) / static_cast<double>(z.size());
  loss.total = loss.mse + weights.l1 * loss.l1 + weights.latent_l2 * loss.latent_l2;
  return loss;
}

template <class Backend>
void AutoencoderModel<Backend>::backward() {
  const int64_t n = batch_ * cfg_.image_numel();
  Backend::resize(dimage_, n);
  be_->error_gradient(dimage_.data(), decoder_.output().data(), encoder_.input().data(), 2.0 / n, weights_.l1 / n, n);
  const Buffer& z = encoder_.output();
  const int64_t nz = static_cast<int64_t>(z.size());
  Backend::resize(dlatent_, nz);
  decoder_.backward(params_.data(), grads_.data(), dimage_.data(), dlatent_.data());
  if (weights_.latent_l2 != 0)
    be_->axpy(dlatent_.data(), 2.0 * weights_.latent_l2 / static_cast<double>(nz), z.data(), nz);
  encoder_.backward(params_.data(), grads_.data(), dlatent_.data(), nullptr);
}

template <class Backend>
void AutoencoderModel<Backend>::encode(const T* images, int64_t B, T* latents) {
  encoder_.forward(params_.data(), images, B);
  be_->copy(latents, encoder_.output().data(), static_cast<int64_t>(encoder_.output().size()));
}

template <class Backend>
void AutoencoderModel<Backend>::decode(const T* latents, int64_t B, T* images) {
  decoder_.forward(params_.data(), latents, B);
  be_->copy(images, decoder_.output().data(), static_cast<int64_t>(decoder_.output().size()));
}

template class AutoencoderModel<CpuBackend<float>>;
template class AutoencoderModel<CpuBackend<double>>;

}  // namespace starflow::core
