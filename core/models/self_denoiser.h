// The official learnable self-denoiser (`learnable_self_denoiser`, NonCausalBlock; golden README §7.4): a
// separate network of 8 bidirectional transformer layers at the base width, on the raster-order tokens (no
// permutation, no SOS), with the text prefix when `conditional_denoiser`, that predicts the denoising step.
// Its training target is the flow's own input gradient, σ_n·numel·∂loss/∂x (detached), its loss the mean squared
// error, and its gradients reach only its own parameters. Written once against a backend.
#pragma once
#include <cstdint>
#include <vector>

#include "core/models/flow_config.h"
#include "core/models/transformer_layer.h"

namespace starflow::core {

constexpr int64_t kDenoiserLayers = 8;  // hard-coded in the official model
// The official sampling step x − pred·0.3·(σ_n − 0)/σ_n hard-codes 0.3, whatever σ_n is.
constexpr double kLearnedDenoiseStep = 0.3;

template <class Backend>
class SelfDenoiser {
 public:
  using T = typename Backend::Scalar;
  using RopeTable = typename Backend::RopeTable;
  template <class U>
  using Buffer = typename Backend::template Buffer<U>;

  // Registers the `learnable_self_denoiser.*` tensors (after the flow's blocks, as the official state_dict).
  SelfDenoiser(const Backend& backend, const FlowConfig& cfg, ParameterLayout& layout);

  // u [B, T, D] raster-order tokens, y [B, L, E] (read only when conditioned) → pred [B, T, D]. Keeps what
  // backward needs.
  void forward(const T* P, const T* u, const T* y, T* pred, int64_t B, const RopeTable& rope);
  // dpred [B, T, D]: accumulates this network's parameter gradients into G (no input gradient: none is needed).
  void backward(const T* P, T* G, const T* dpred, int64_t B, const RopeTable& rope);
  bool conditioned() const { return L_ > 0; }

 private:
  const Backend* be_;
  int64_t T_ = 0, D_ = 0, C_ = 0, L_ = 0, E_ = 0;
  int64_t proj_in_w_ = -1, proj_in_b_ = -1, proj_out_w_ = -1, proj_out_b_ = -1, proj_txt_w_ = -1, proj_txt_b_ = -1;
  int64_t final_norm_w_ = -1;
  std::vector<TransformerLayer<Backend>> layers_;
  // Forward state.
  const T* u_ = nullptr;
  const T* y_ = nullptr;
  std::vector<LayerActivations<Backend>> acts_;
  Buffer<T> emb_, final_out_, h_img_, h_norm_;
  Buffer<typename Backend::Stat> rrms_;
  LayerScratch<Backend> scratch_;
  Buffer<T> d_seq_a_, d_seq_b_, d_h_norm_, d_h_img_, d_emb_;
};

}  // namespace starflow::core
