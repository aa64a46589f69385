// sample_latents<Backend>: the body of every LatentSampler (latent_sampling.h).
#pragma once
#include <vector>

#include "core/io/model_weights.h"
#include "core/models/model_transfer.h"
#include "core/models/sampler.h"
#include "jobs/latent_sampling.h"

namespace starflow::jobs {

template <class Backend>
std::vector<float> sample_latents(const SamplingRequest& r, core::Communicator* tp) {
  using T = typename Backend::Scalar;
  core::FlowModel<Backend> model(r.model, tp);
  const Backend& be = model.backend();
  const int64_t total = model.layout().total_size();
  if constexpr (Backend::kHostMemory && std::is_same_v<T, float>) {
    core::io::load_weights(model.layout(), model.parameters().data(), *r.weights);
  } else {
    std::vector<float> host(static_cast<size_t>(total));
    core::io::load_weights(model.layout(), host.data(), *r.weights);
    core::from_host(be, model.parameters().data(), host.data(), total);
  }
  const auto upload = [&](const float* data, int64_t n) {
    typename Backend::template Buffer<T> buffer;
    Backend::resize(buffer, static_cast<size_t>(n));
    if (data) core::from_host(be, buffer.data(), data, n);
    return buffer;
  };
  const auto& c = r.model;
  const int64_t cond = r.batch * c.txt_size * c.txt_dim;
  const auto noise = upload(r.noise.data(), static_cast<int64_t>(r.noise.size()));
  const auto y = upload(r.y, r.y ? cond : 0), y_null = upload(r.y_null, r.y_null ? cond : 0);
  auto x = core::sample(model, noise.data(), r.y ? y.data() : nullptr, r.y_null ? y_null.data() : nullptr, r.batch,
                        r.options);
  // A model with the learnable self-denoiser denoises with it, as the official sampler does; else the
  // score-based step.
  if (r.denoise && model.has_denoiser())
    x = core::denoise_learned(model, x.data(), r.y ? y.data() : nullptr, r.batch, r.noise_std);
  else if (r.denoise)
    x = core::denoise(model, x.data(), r.y ? y.data() : nullptr, r.batch, r.noise_std);
  return core::to_host<float>(be, x.data(), static_cast<int64_t>(r.noise.size()));
}

}  // namespace starflow::jobs
