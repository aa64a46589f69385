// Sampling (spec §2.5, §2.6, §5.1, §6.1): the reverse pass noise→data block by block (deep block first),
// sequential KV-cached or Jacobi decoding, STARFlow classifier-free guidance in the conditioned blocks,
// and one score-based (Tweedie) denoising step. Written once against the model's backend: pointers and the
// returned buffers are in the backend's memory (host memory on the CPU).
#pragma once
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/models/starflow_model.h"

namespace starflow::core {

// Optional conditioning pointers (nullptr allowed) take their type from the model, not from the argument.
template <class T>
using NoDeduce = std::type_identity_t<const T*>;

struct SampleOptions {
  double guidance = 0;  // CFG weight w ≥ 0; applied when y_null is given (the batch is doubled)
  bool jacobi = false;
  int64_t jacobi_block_size = 16, jacobi_max_iter = 32;
  double jacobi_threshold = 1e-3;  // on δ = mean((ξ−X)²)/mean(ξ²), a relative *squared* change
  // τ: every attention logit divided by it in sequential decoding, the text prefix included (the official
  // `attn_temp`); Jacobi decoding ignores it, as the official MetaBlock.jacobi does.
  double attention_temperature = 1.0;
};

template <class T>
struct SampleTrace {
  std::vector<std::vector<T>> sequence;                // image-shaped, on the host: [0] the noise, [k] after k blocks
  std::vector<std::vector<int64_t>> jacobi_iterations;  // per block in decoding order (top first), per chunk
};

template <class Backend>
using SampleBuffer = typename Backend::template Buffer<typename Backend::Scalar>;

// noise [B, Cin, H, W]; y [B, L, E] (conditional models) and y_null [B, L, E] (the null condition; its
// presence turns on guidance with options.guidance). Returns the sample [B, Cin, H, W] (still noisy:
// apply denoise()). trace, when given, receives the intermediate images and Jacobi iteration counts.
template <class Backend>
SampleBuffer<Backend> sample(const FlowModel<Backend>& model, NoDeduce<typename Backend::Scalar> noise,
                             NoDeduce<typename Backend::Scalar> y, NoDeduce<typename Backend::Scalar> y_null,
                             int64_t B, const SampleOptions& options,
                             SampleTrace<typename Backend::Scalar>* trace = nullptr);

// One reverse pass of block k: z [B, T, D] raster → x [B, T, D] raster (guided when y_null is given).
// states, when given, are reused (sample() passes the same for all blocks so that the KV caches and
// buffers are allocated once per call, not once per block); one per group of samples decoded concurrently.
template <class Backend>
void reverse_block(const FlowModel<Backend>& model, int64_t k, NoDeduce<typename Backend::Scalar> z,
                   typename Backend::Scalar* x, NoDeduce<typename Backend::Scalar> y,
                   NoDeduce<typename Backend::Scalar> y_null, int64_t B, const SampleOptions& options,
                   std::vector<int64_t>* jacobi_iterations = nullptr,
                   std::vector<DecodeState<Backend>>* states = nullptr);

// x + σ_n²·∇ₓ log p(x | y): the gradient of the per-dimension NLL (no regulariser) scaled by the element
// count, applied once. Uses the model's backward pass (the model's forward state is overwritten).
template <class Backend>
SampleBuffer<Backend> denoise(FlowModel<Backend>& model, NoDeduce<typename Backend::Scalar> x,
                              NoDeduce<typename Backend::Scalar> y, int64_t B, double noise_std);

// The learnable self-denoiser's step (the official apply_denoising, used instead of denoise() when the model has
// one): x − pred(x, y)·0.3·(σ_n − 0)/σ_n, with the 0.3 hard-coded as the official code has it, whatever σ_n is.
// y: the conditional prefix (read only by a conditional denoiser).
template <class Backend>
SampleBuffer<Backend> denoise_learned(FlowModel<Backend>& model, NoDeduce<typename Backend::Scalar> x,
                                      NoDeduce<typename Backend::Scalar> y, int64_t B, double noise_std);

}  // namespace starflow::core
