// Autoencoder: the two conv chains under `encoder.*` / `decoder.*` names, the reconstruction loss and its
// gradient.
#include "core/models/autoencoder.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "core/random.h"

namespace starflow::core {

namespace {

// norm → SiLU: the pre-activation that precedes every conv after the first (as in the SD VAE's blocks).
template <class T>
void add_norm_silu(ConvStack<T>& stack, const std::string& name, int64_t groups, ParameterLayout& layout) {
  stack.add_group_norm(name, groups, layout);
  stack.add_silu();
}

}  // namespace

template <class T>
Autoencoder<T>::Autoencoder(const AutoencoderConfig& cfg)
    : cfg_((cfg.validate(), cfg)),
      encoder_(cfg.image_channels, cfg.image_size, cfg.image_size),
      decoder_(cfg.latent_channels, cfg.latent_size(), cfg.latent_size()) {
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

  params_.assign(layout_.total_size(), T(0));
  grads_.assign(layout_.total_size(), T(0));
}

template <class T>
void Autoencoder<T>::set_latent_normalisation(double scaling_factor, double shift_factor) {
  AutoencoderConfig c = cfg_;
  c.scaling_factor = scaling_factor;
  c.shift_factor = shift_factor;
  c.validate();
  cfg_ = c;
}

template <class T>
void Autoencoder<T>::zero_gradients() {
  std::fill(grads_.begin(), grads_.end(), T(0));
}

template <class T>
void Autoencoder<T>::init_parameters(uint64_t seed) {
  Rng rng(seed);
  std::fill(params_.begin(), params_.end(), T(0));
  for (const ParameterView& v : layout_.views()) {
    std::span<T> p = view(params_, v);
    const bool norm = v.name.find("norm") != std::string::npos;
    if (norm) {
      if (v.name.ends_with(".weight")) std::fill(p.begin(), p.end(), T(1));
      continue;
    }
    // Conv weight [out, in, k, k] or its bias: fan_in = in·k·k from the weight.
    const Shape& w = layout_.at(v.name.substr(0, v.name.rfind('.')) + ".weight").shape;
    const double bound = 1.0 / std::sqrt(static_cast<double>(w[1] * w[2] * w[3]));
    for (T& x : p) x = T(rng.uniform(-bound, bound));
  }
}

template <class T>
AutoencoderLoss Autoencoder<T>::forward(const T* images, int64_t B, const AutoencoderLossWeights& weights) {
  batch_ = B;
  weights_ = weights;
  const int64_t n = B * cfg_.image_numel();
  encoder_.forward(params_.data(), images, B);
  decoder_.forward(params_.data(), encoder_.output().data(), B);

  // Sums in double whatever T is: the loss is a mean of many small terms.
  AutoencoderLoss loss;
  const std::vector<T>& x_hat = decoder_.output();
  double sq = 0, abs = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x_hat[i]) - static_cast<double>(images[i]);
    sq += d * d;
    abs += std::fabs(d);
  }
  loss.mse = sq / n;
  loss.l1 = abs / n;
  const std::vector<T>& z = encoder_.output();
  double zz = 0;
  for (T v : z) zz += static_cast<double>(v) * v;
  loss.latent_l2 = zz / static_cast<double>(z.size());
  loss.total = loss.mse + weights.l1 * loss.l1 + weights.latent_l2 * loss.latent_l2;
  return loss;
}

template <class T>
void Autoencoder<T>::backward() {
  const int64_t n = batch_ * cfg_.image_numel();
  const std::vector<T>& x_hat = decoder_.output();
  const std::vector<T>& images = encoder_.input();
  dimage_.resize(n);
  const T mse_scale = T(2.0 / n), l1_scale = T(weights_.l1 / n);
  for (int64_t i = 0; i < n; ++i) {
    const T d = x_hat[i] - images[i];
    // d|x|/dx taken as 0 at 0, like torch.sign.
    const T sign = d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0));
    dimage_[i] = mse_scale * d + l1_scale * sign;
  }
  const std::vector<T>& z = encoder_.output();
  dlatent_.resize(z.size());
  decoder_.backward(params_.data(), grads_.data(), dimage_.data(), dlatent_.data());
  if (weights_.latent_l2 != 0) {
    const T reg = T(2.0 * weights_.latent_l2 / static_cast<double>(z.size()));
    for (size_t i = 0; i < z.size(); ++i) dlatent_[i] += reg * z[i];
  }
  encoder_.backward(params_.data(), grads_.data(), dlatent_.data(), nullptr);
}

template <class T>
void Autoencoder<T>::encode(const T* images, int64_t B, T* latents) {
  encoder_.forward(params_.data(), images, B);
  std::copy(encoder_.output().begin(), encoder_.output().end(), latents);
}

template <class T>
void Autoencoder<T>::decode(const T* latents, int64_t B, T* images) {
  decoder_.forward(params_.data(), latents, B);
  std::copy(decoder_.output().begin(), decoder_.output().end(), images);
}

template class Autoencoder<float>;
template class Autoencoder<double>;

}  // namespace starflow::core
