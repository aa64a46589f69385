// SdVae's definitions (building the parameter table in diffusers' state_dict order, and the encoder and decoder
// passes), included by each backend's instantiation.
#pragma once
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "core/models/sd_vae.h"

namespace starflow::core {

namespace sd_vae_detail {

constexpr double kGroupNormEps = 1e-6;                   // diffusers' VAE: every GroupNorm (not PyTorch's 1e-5)
constexpr double kLogvarMin = -30.0, kLogvarMax = 20.0;  // DiagonalGaussianDistribution's clamp

inline std::string index_name(const std::string& prefix, int64_t i) { return prefix + "." + std::to_string(i); }

}  // namespace sd_vae_detail

template <class Backend>
typename SdVae<Backend>::Conv SdVae<Backend>::add_conv(const std::string& name, int64_t in, int64_t out,
                                                       int64_t kernel) {
  Conv c;
  c.in = in;
  c.out = out;
  c.kernel = kernel;
  c.weight = layout_.add(name + ".weight", {out, in, kernel, kernel});
  c.bias = layout_.add(name + ".bias", {out});
  return c;
}

template <class Backend>
typename SdVae<Backend>::Norm SdVae<Backend>::add_norm(const std::string& name, int64_t channels) {
  Norm n;
  n.channels = channels;
  n.weight = layout_.add(name + ".weight", {channels});
  n.bias = layout_.add(name + ".bias", {channels});
  return n;
}

template <class Backend>
typename SdVae<Backend>::Linear SdVae<Backend>::add_linear(const std::string& name, int64_t in, int64_t out) {
  Linear l;
  l.weight = layout_.add(name + ".weight", {out, in});
  l.bias = layout_.add(name + ".bias", {out});
  return l;
}

template <class Backend>
typename SdVae<Backend>::Resnet SdVae<Backend>::add_resnet(const std::string& name, int64_t in, int64_t out) {
  Resnet r;
  r.norm1 = add_norm(name + ".norm1", in);
  r.conv1 = add_conv(name + ".conv1", in, out, 3);
  r.norm2 = add_norm(name + ".norm2", out);
  r.conv2 = add_conv(name + ".conv2", out, out, 3);
  r.has_shortcut = in != out;
  if (r.has_shortcut) r.shortcut = add_conv(name + ".conv_shortcut", in, out, 1);
  return r;
}

template <class Backend>
typename SdVae<Backend>::MidBlock SdVae<Backend>::add_mid_block(const std::string& name, int64_t channels) {
  // state_dict order: UNetMidBlock2D registers its attentions before its resnets.
  MidBlock m;
  const std::string attn = name + ".attentions.0";
  m.attention.channels = channels;
  m.attention.norm = add_norm(attn + ".group_norm", channels);
  m.attention.q = add_linear(attn + ".to_q", channels, channels);
  m.attention.k = add_linear(attn + ".to_k", channels, channels);
  m.attention.v = add_linear(attn + ".to_v", channels, channels);
  m.attention.out = add_linear(attn + ".to_out.0", channels, channels);
  m.first = add_resnet(name + ".resnets.0", channels, channels);
  m.second = add_resnet(name + ".resnets.1", channels, channels);
  return m;
}

template <class Backend>
SdVae<Backend>::SdVae(const SdVaeConfig& cfg) : cfg_(cfg), be_(std::make_unique<Backend>()) {
  using sd_vae_detail::index_name;
  cfg_.validate("SdVae config");
  const auto& ch = cfg_.block_out_channels;
  const int64_t n = cfg_.num_blocks(), L = cfg_.latent_channels;

  enc_conv_in_ = add_conv("encoder.conv_in", cfg_.in_channels, ch[0], 3);
  for (int64_t i = 0; i < n; ++i) {
    const std::string name = index_name("encoder.down_blocks", i);
    Block blk;
    for (int64_t j = 0; j < cfg_.layers_per_block; ++j)
      blk.resnets.push_back(add_resnet(index_name(name + ".resnets", j), j == 0 ? ch[std::max<int64_t>(i - 1, 0)] : ch[i],
                                       ch[i]));
    blk.has_sampler = i < n - 1;
    if (blk.has_sampler) blk.sampler = add_conv(name + ".downsamplers.0.conv", ch[i], ch[i], 3);
    down_.push_back(std::move(blk));
  }
  enc_mid_ = add_mid_block("encoder.mid_block", ch[n - 1]);
  enc_norm_out_ = add_norm("encoder.conv_norm_out", ch[n - 1]);
  enc_conv_out_ = add_conv("encoder.conv_out", ch[n - 1], 2 * L, 3);

  dec_conv_in_ = add_conv("decoder.conv_in", L, ch[n - 1], 3);
  for (int64_t i = 0; i < n; ++i) {
    // up_blocks.0 is the deepest, widest block: the widths run in reverse.
    const std::string name = index_name("decoder.up_blocks", i);
    const int64_t out = ch[n - 1 - i], in = ch[n - 1 - std::max<int64_t>(i - 1, 0)];
    Block blk;
    for (int64_t j = 0; j <= cfg_.layers_per_block; ++j)
      blk.resnets.push_back(add_resnet(index_name(name + ".resnets", j), j == 0 ? in : out, out));
    blk.has_sampler = i < n - 1;
    if (blk.has_sampler) blk.sampler = add_conv(name + ".upsamplers.0.conv", out, out, 3);
    up_.push_back(std::move(blk));
  }
  dec_mid_ = add_mid_block("decoder.mid_block", ch[n - 1]);
  dec_norm_out_ = add_norm("decoder.conv_norm_out", ch[0]);
  dec_conv_out_ = add_conv("decoder.conv_out", ch[0], cfg_.out_channels, 3);

  quant_conv_ = add_conv("quant_conv", 2 * L, 2 * L, 1);
  post_quant_conv_ = add_conv("post_quant_conv", L, L, 1);

  Backend::resize(params_, layout_.total_size());
  be_->fill(params_.data(), T(0), layout_.total_size());
}

template <class Backend>
SdVae<Backend>::SdVae(SdVae&&) noexcept = default;
template <class Backend>
SdVae<Backend>::~SdVae() = default;

template <class Backend>
void SdVae<Backend>::record(const std::string& name, const T* data, int64_t n) const {
  if (capture_ == nullptr) return;
  std::vector<T> host(static_cast<size_t>(n));
  be_->download(host.data(), data, n);
  std::vector<double>& dst = (*capture_)[name];
  dst.resize(host.size());
  for (size_t i = 0; i < host.size(); ++i) {
    if constexpr (std::is_arithmetic_v<T>) dst[i] = static_cast<double>(host[i]);
    else dst[i] = static_cast<double>(static_cast<float>(host[i]));  // bf16 through fp32
  }
}

template <class Backend>
void SdVae<Backend>::reserve(int64_t n, int64_t attention_rows, int64_t B) {
  for (Buffer* b : {&cur_, &next_, &a_, &b_}) Backend::grow(*b, static_cast<size_t>(n));
  const int64_t C = cfg_.block_out_channels.back();
  for (Buffer* b : {&q_, &k_, &v_}) Backend::grow(*b, static_cast<size_t>(B * attention_rows * C));
  Backend::grow(probs_, static_cast<size_t>(B * attention_rows * attention_rows));
  Backend::grow(stats_, static_cast<size_t>(2 * B * cfg_.norm_num_groups));
}

template <class Backend>
void SdVae<Backend>::conv(T* out, const T* x, const Conv& c, int64_t B, int64_t H, int64_t W, int64_t stride,
                          bool pad_right_bottom_only) const {
  Conv2dShape s{B, c.in, H, W, c.out, c.kernel, stride, c.kernel / 2};
  if (pad_right_bottom_only) {
    // diffusers' Downsample2D: F.pad(x, (0, 1, 0, 1)) then an unpadded stride-2 conv.
    s.padding = 0;
    s.pad_bottom = 1;
    s.pad_right = 1;
  }
  be_->conv2d_forward(out, x, params_.data() + c.weight, params_.data() + c.bias, s);
}

template <class Backend>
void SdVae<Backend>::norm_silu(T* out, const T* x, const Norm& n, int64_t B, int64_t HW) {
  const int64_t G = cfg_.norm_num_groups;
  be_->group_norm_forward(out, stats_.data(), stats_.data() + B * G, x, params_.data() + n.weight,
                          params_.data() + n.bias, B, n.channels, HW, G, sd_vae_detail::kGroupNormEps);
  be_->silu_forward(out, out, B * n.channels * HW);
}

template <class Backend>
void SdVae<Backend>::resnet(T* out, const T* x, const Resnet& r, int64_t B, int64_t H, int64_t W) {
  const int64_t HW = H * W;
  norm_silu(a_.data(), x, r.norm1, B, HW);
  conv(b_.data(), a_.data(), r.conv1, B, H, W);
  norm_silu(a_.data(), b_.data(), r.norm2, B, HW);
  conv(out, a_.data(), r.conv2, B, H, W);
  const T* residual = x;
  if (r.has_shortcut) {
    conv(b_.data(), x, r.shortcut, B, H, W);
    residual = b_.data();
  }
  be_->axpy(out, 1.0, residual, B * r.conv2.out * HW);
}

template <class Backend>
void SdVae<Backend>::attention(T* out, const T* x, const Attention& a, int64_t B, int64_t H, int64_t W) {
  const int64_t C = a.channels, S = H * W, G = cfg_.norm_num_groups;
  const T* P = params_.data();
  be_->group_norm_forward(a_.data(), stats_.data(), stats_.data() + B * G, x, P + a.norm.weight, P + a.norm.bias, B,
                          C, S, G, sd_vae_detail::kGroupNormEps);
  // [B, C, H, W] → [B, S, C]: the pixels as a sequence of C-wide tokens in raster order (patchify with p = 1).
  be_->patchify(b_.data(), a_.data(), B, C, H, W, 1);
  be_->linear_forward(q_.data(), b_.data(), P + a.q.weight, P + a.q.bias, B * S, C, C);
  be_->linear_forward(k_.data(), b_.data(), P + a.k.weight, P + a.k.bias, B * S, C, C);
  be_->linear_forward(v_.data(), b_.data(), P + a.v.weight, P + a.v.bias, B * S, C, C);
  be_->attention_dense_forward(a_.data(), probs_.data(), q_.data(), k_.data(), v_.data(), nullptr, nullptr, B, S, 1,
                               C, 1.0 / std::sqrt(static_cast<double>(C)));
  be_->linear_forward(b_.data(), a_.data(), P + a.out.weight, P + a.out.bias, B * S, C, C);
  be_->unpatchify(out, b_.data(), B, C, H, W, 1);
  be_->axpy(out, 1.0, x, B * C * S);
}

template <class Backend>
void SdVae<Backend>::mid_block(const MidBlock& m, const std::string& part, int64_t B, int64_t H, int64_t W) {
  const int64_t n = B * m.attention.channels * H * W;
  resnet(next_.data(), cur_.data(), m.first, B, H, W);
  std::swap(cur_, next_);
  attention(next_.data(), cur_.data(), m.attention, B, H, W);
  std::swap(cur_, next_);
  record(part + ".mid_block.attentions.0", cur_.data(), n);
  resnet(next_.data(), cur_.data(), m.second, B, H, W);
  std::swap(cur_, next_);
  record(part + ".mid_block", cur_.data(), n);
}

template <class Backend>
void SdVae<Backend>::encode(const T* images, int64_t B, int64_t H, int64_t W, T* mean, T* logvar) {
  using sd_vae_detail::index_name;
  const int64_t f = cfg_.downsampling(), n = cfg_.num_blocks(), L = cfg_.latent_channels;
  if (B < 1 || H < f || W < f || H % f != 0 || W % f != 0)
    throw std::invalid_argument("SdVae::encode: images of " + std::to_string(H) + "x" + std::to_string(W) +
                                " (batch " + std::to_string(B) + "); the sides must be positive multiples of " +
                                std::to_string(f));
  const auto& ch = cfg_.block_out_channels;
  // The largest activation: a block's widest tensor at its resolution (its first resnet reads the previous width).
  int64_t largest = B * std::max(cfg_.in_channels, ch[0]) * H * W;
  for (int64_t i = 0; i < n; ++i)
    largest = std::max(largest, B * std::max(ch[i], ch[std::max<int64_t>(i - 1, 0)]) * (H >> i) * (W >> i));
  reserve(largest, (H / f) * (W / f), B);

  conv(cur_.data(), images, enc_conv_in_, B, H, W);
  record("encoder.conv_in", cur_.data(), B * ch[0] * H * W);
  int64_t h = H, w = W;
  for (int64_t i = 0; i < n; ++i) {
    const Block& blk = down_[static_cast<size_t>(i)];
    for (const Resnet& r : blk.resnets) {
      resnet(next_.data(), cur_.data(), r, B, h, w);
      std::swap(cur_, next_);
    }
    if (blk.has_sampler) {
      conv(next_.data(), cur_.data(), blk.sampler, B, h, w, 2, /*pad_right_bottom_only=*/true);
      std::swap(cur_, next_);
      h /= 2;
      w /= 2;
    }
    record(index_name("encoder.down_blocks", i), cur_.data(), B * ch[i] * h * w);
  }
  mid_block(enc_mid_, "encoder", B, h, w);
  norm_silu(next_.data(), cur_.data(), enc_norm_out_, B, h * w);
  conv(cur_.data(), next_.data(), enc_conv_out_, B, h, w);
  record("encoder.conv_out", cur_.data(), B * 2 * L * h * w);
  conv(next_.data(), cur_.data(), quant_conv_, B, h, w);
  record("quant_conv", next_.data(), B * 2 * L * h * w);
  // moments [B, 2L, h, w] = [mean; logvar] along the channels.
  const int64_t plane = L * h * w;
  be_->copy_strided(mean, plane, next_.data(), 2 * plane, B, plane);
  be_->copy_strided(logvar, plane, next_.data() + plane, 2 * plane, B, plane);
  be_->clamp(logvar, sd_vae_detail::kLogvarMin, sd_vae_detail::kLogvarMax, B * plane);
}

template <class Backend>
void SdVae<Backend>::decode(const T* z, int64_t B, int64_t h, int64_t w, T* images) {
  using sd_vae_detail::index_name;
  const int64_t n = cfg_.num_blocks(), L = cfg_.latent_channels;
  if (B < 1 || h < 1 || w < 1)
    throw std::invalid_argument("SdVae::decode: latents of " + std::to_string(h) + "x" + std::to_string(w) +
                                " (batch " + std::to_string(B) + ")");
  const auto& ch = cfg_.block_out_channels;
  // Up block i runs at h·2^i on the reversed widths; its upsampled output (before the conv) is the next block's
  // input size.
  int64_t largest = B * std::max(L, ch[n - 1]) * h * w;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t out = ch[n - 1 - i], in = ch[n - 1 - std::max<int64_t>(i - 1, 0)];
    const int64_t scale = int64_t{1} << i;
    largest = std::max(largest, B * std::max(in, out) * (h * scale) * (w * scale));
    if (i < n - 1) largest = std::max(largest, B * out * (h * scale * 2) * (w * scale * 2));
  }
  reserve(largest, h * w, B);

  conv(cur_.data(), z, post_quant_conv_, B, h, w);
  record("post_quant_conv", cur_.data(), B * L * h * w);
  conv(next_.data(), cur_.data(), dec_conv_in_, B, h, w);
  std::swap(cur_, next_);
  record("decoder.conv_in", cur_.data(), B * ch[n - 1] * h * w);
  mid_block(dec_mid_, "decoder", B, h, w);
  int64_t hh = h, ww = w;
  for (int64_t i = 0; i < n; ++i) {
    const Block& blk = up_[static_cast<size_t>(i)];
    const int64_t out = ch[n - 1 - i];
    for (const Resnet& r : blk.resnets) {
      resnet(next_.data(), cur_.data(), r, B, hh, ww);
      std::swap(cur_, next_);
    }
    if (blk.has_sampler) {
      be_->upsample_nearest2x_forward(a_.data(), cur_.data(), B * out, hh, ww);
      hh *= 2;
      ww *= 2;
      conv(next_.data(), a_.data(), blk.sampler, B, hh, ww);
      std::swap(cur_, next_);
    }
    record(index_name("decoder.up_blocks", i), cur_.data(), B * out * hh * ww);
  }
  norm_silu(next_.data(), cur_.data(), dec_norm_out_, B, hh * ww);
  conv(images, next_.data(), dec_conv_out_, B, hh, ww);
}

}  // namespace starflow::core
