// Sampler definitions (token loops, Jacobi fixed-point iteration and guidance over MetaBlock's cached decode
// path), included by each backend's instantiation.
#pragma once
#include <algorithm>
#include <stdexcept>
#include <utility>

#include "core/models/sampler.h"

namespace starflow::core {
namespace sampler_detail {

// reverse_block for one group of samples, with its state.
template <class Backend>
void reverse_rows(const FlowModel<Backend>& model, int64_t k, const typename Backend::Scalar* z,
                  typename Backend::Scalar* x, const typename Backend::Scalar* y,
                  const typename Backend::Scalar* y_null, int64_t B, const SampleOptions& opt,
                  std::vector<int64_t>* jacobi_iterations, DecodeState<Backend>& st) {
  using T = typename Backend::Scalar;
  const Backend& be = model.backend();
  const MetaBlock<Backend>& block = model.block(k);
  const T* P = model.parameters().data();
  const auto& rope = model.rope_table(block.conditioned());
  const int64_t Tn = block.tokens(), D = block.token_dim();
  const bool guided = block.conditioned() && y_null != nullptr;
  const int64_t rows = guided ? 2 * B : B;
  if (block.identity()) return be.copy(x, z, B * Tn * D);

  // v: the permuted noise, duplicated for the null half when guided; y_cat likewise [y; y_null].
  SampleBuffer<Backend> v, y_cat;
  Backend::resize(v, rows * Tn * D);
  be.permute_tokens(v.data(), z, B, Tn, D, block.flips());
  if (guided) be.copy(v.data() + B * Tn * D, v.data(), B * Tn * D);
  const T* y_use = y;
  if (guided) {
    const auto& c = model.config();
    const int64_t ylen = B * c.txt_size * c.txt_dim;
    Backend::resize(y_cat, 2 * ylen);
    be.copy(y_cat.data(), y, ylen);
    be.copy(y_cat.data() + ylen, y_null, ylen);
    y_use = y_cat.data();
  }
  // The official code has no Jacobi decoding without the SOS token (MetaBlock.jacobi asserts use_sos).
  if (opt.jacobi && !block.has_sos())
    throw std::invalid_argument("sampling: Jacobi decoding needs the SOS token, and this model has sos: false (the "
                                "official MetaBlock.jacobi asserts use_sos); use sequential decoding");
  st.attention_temperature = opt.jacobi ? 1.0 : opt.attention_temperature;
  block.begin_decode(P, st, y_use, rows, rope);
  st.paired_halves = guided;  // both halves are fed the same X below

  // X [rows, T+1, D]: X[:, 0] = SOS, X[:, t+1] = generated token t (initially the noise: Jacobi's guess). Without
  // SOS, token 0 is its noise (σ = 1, μ = 0), and position t's outputs give token t + 1: everything moves by one.
  const int64_t shift = block.has_sos() ? 0 : 1;
  SampleBuffer<Backend> X, inp, sigma, mu;
  Backend::resize(X, rows * (Tn + 1) * D);
  if (block.has_sos()) be.copy_strided(X.data(), (Tn + 1) * D, block.sos(P), 0, rows, D);
  be.copy_strided(X.data() + D, (Tn + 1) * D, v.data(), Tn * D, rows, Tn * D);
  const int64_t chunk = opt.jacobi ? std::max<int64_t>(1, opt.jacobi_block_size) : 1;
  const int64_t max_iter = opt.jacobi ? std::max<int64_t>(1, opt.jacobi_max_iter) : 1;
  for (auto* b : {&inp, &sigma, &mu}) Backend::resize(*b, rows * chunk * D);
  for (int64_t start = 0; start < Tn - shift; start += chunk) {
    const int64_t n = std::min(chunk, Tn - shift - start);
    int64_t iters = 0;
    for (int64_t it = 0; it < max_iter; ++it) {
      be.copy_strided(inp.data(), n * D, X.data() + (start + shift) * D, (Tn + 1) * D, rows, n * D);
      block.decode_chunk(P, st, inp.data(), start, n, sigma.data(), mu.data(), rope);
      if (guided) be.guidance(sigma.data(), mu.data(), B * n * D, opt.guidance);
      const auto [diff, norm] = be.affine_update(X.data() + (start + 1 + shift) * D, (Tn + 1) * D,
                                                 v.data() + (start + shift) * D, Tn * D, sigma.data(), mu.data(), rows,
                                                 n * D);
      iters = it + 1;
      // Sequential decoding is the chunk-of-one case that always stops after one pass.
      if (!opt.jacobi || diff / norm < opt.jacobi_threshold) break;
    }
    if (jacobi_iterations && opt.jacobi) jacobi_iterations->push_back(iters);
  }
  SampleBuffer<Backend> out;
  Backend::resize(out, B * Tn * D);
  be.copy_strided(out.data(), Tn * D, X.data() + D, (Tn + 1) * D, B, Tn * D);
  be.permute_tokens(x, out.data(), B, Tn, D, block.flips());
}

}  // namespace sampler_detail

template <class Backend>
void reverse_block(const FlowModel<Backend>& model, int64_t k, NoDeduce<typename Backend::Scalar> z,
                   typename Backend::Scalar* x, NoDeduce<typename Backend::Scalar> y,
                   NoDeduce<typename Backend::Scalar> y_null, int64_t B, const SampleOptions& opt,
                   std::vector<int64_t>* jacobi_iterations, std::vector<DecodeState<Backend>>* states) {
  const Backend& be = model.backend();
  const MetaBlock<Backend>& block = model.block(k);
  const bool guided = block.conditioned() && y_null != nullptr;
  // The backend may decode groups of whole samples concurrently (the CPU: one group per thread).
  const int64_t per_group = be.samples_per_thread_group(block, opt, B, guided ? 2 : 1);
  const int64_t groups = per_group > 0 ? (B + per_group - 1) / per_group : 1;
  const int64_t workers = groups > 1 ? be.group_workers(groups) : 1;
  std::vector<DecodeState<Backend>> own;
  std::vector<DecodeState<Backend>>& st = states ? *states : own;
  if (st.size() < static_cast<size_t>(workers)) st.resize(workers);
  const auto weights = model.decode_weights(k);
  for (auto& s : st) s.weights = weights;
  if (groups == 1)
    return sampler_detail::reverse_rows(model, k, z, x, y, y_null, B, opt, jacobi_iterations, st[0]);

  const auto& c = model.config();
  const int64_t per_sample = block.tokens() * block.token_dim(), per_text = c.txt_size * c.txt_dim;
  be.run_groups(groups, workers, [&](int64_t g, int64_t worker) {
    const int64_t b0 = g * per_group, b1 = std::min(B, b0 + per_group);
    sampler_detail::reverse_rows(model, k, z + b0 * per_sample, x + b0 * per_sample, y ? y + b0 * per_text : nullptr,
                                 y_null ? y_null + b0 * per_text : nullptr, b1 - b0, opt, nullptr, st[worker]);
  });
}

template <class Backend>
SampleBuffer<Backend> sample(const FlowModel<Backend>& model, NoDeduce<typename Backend::Scalar> noise,
                             NoDeduce<typename Backend::Scalar> y, NoDeduce<typename Backend::Scalar> y_null,
                             int64_t B, const SampleOptions& opt, SampleTrace<typename Backend::Scalar>* trace) {
  using T = typename Backend::Scalar;
  const Backend& be = model.backend();
  const FlowConfig& c = model.config();
  const int64_t n = B * c.tokens() * c.token_dim();
  SampleBuffer<Backend> u, next, image;
  for (auto* b : {&u, &next, &image}) Backend::resize(*b, n);
  auto record = [&](const T* device_image) {
    std::vector<T> host(static_cast<size_t>(n));
    be.download(host.data(), device_image, n);
    trace->sequence.push_back(std::move(host));
  };
  be.patchify(u.data(), noise, B, c.in_channels, c.img_size, c.img_size, c.patch_size);
  if (trace) {
    trace->sequence.clear();
    trace->jacobi_iterations.clear();
    record(noise);
  }
  std::vector<DecodeState<Backend>> states;
  for (int64_t k = c.num_blocks; k-- > 0;) {
    std::vector<int64_t> iters;
    reverse_block(model, k, u.data(), next.data(), y, y_null, B, opt, &iters, &states);
    std::swap(u, next);
    if (trace) {
      be.unpatchify(image.data(), u.data(), B, c.in_channels, c.img_size, c.img_size, c.patch_size);
      record(image.data());
      trace->jacobi_iterations.push_back(iters);
    }
  }
  be.unpatchify(image.data(), u.data(), B, c.in_channels, c.img_size, c.img_size, c.patch_size);
  return image;
}

template <class Backend>
SampleBuffer<Backend> denoise(FlowModel<Backend>& model, NoDeduce<typename Backend::Scalar> x,
                              NoDeduce<typename Backend::Scalar> y, int64_t B, double noise_std) {
  const Backend& be = model.backend();
  const FlowConfig& c = model.config();
  const int64_t n = B * c.in_channels * c.img_size * c.img_size;
  model.forward(x, y, B, 0.0);
  SampleBuffer<Backend> grad, out;
  Backend::resize(grad, n);
  Backend::resize(out, n);
  model.backward(grad.data(), /*parameter_gradients=*/false);
  // ∂(batch-mean per-dim loss)/∂x · numel = −∇ log p per sample, whatever the batch size.
  be.step_against(out.data(), x, grad.data(), noise_std * noise_std * double(n), n);
  return out;
}

template <class Backend>
SampleBuffer<Backend> denoise_learned(FlowModel<Backend>& model, NoDeduce<typename Backend::Scalar> x,
                                      NoDeduce<typename Backend::Scalar> y, int64_t B, double noise_std) {
  const FlowConfig& c = model.config();
  const int64_t n = B * c.in_channels * c.img_size * c.img_size;
  model.denoiser_forward(x, y, nullptr, B);  // each sample on its own: the batch is the official chunks of one
  SampleBuffer<Backend> out;
  Backend::resize(out, n);
  model.backend().step_against(out.data(), x, model.denoiser_prediction().data(),
                               kLearnedDenoiseStep * (noise_std - 0.0) / noise_std, n);
  return out;
}

}  // namespace starflow::core
