// The STARFlow model (deep-shallow stack of MetaBlocks, spec §3) with its training loss (§4.1): forward
// data→noise with every intermediate kept, the NLL and the latent-norm regulariser, and the backward pass
// into one flat gradient buffer. Templated on the scalar: float for speed, double for gradient checks.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/models/flow_config.h"
#include "core/models/meta_block.h"
#include "core/models/parameter_layout.h"
#include "core/ops/cpu/rope.h"

namespace starflow::core {

struct LossParts {
  double nll = 0;          // loss_z + loss_logdet  (= NLL per dim in nats − ½·log 2π)
  double z = 0;            // ½·mean(z²)
  double logdet = 0;       // −Σ_k mean(logdet_k) = Σ_k mean(log σ_k)
  double latent_norm = 0;  // Σ_{k<K} mean(outputs[k]²), outputs[0] = the input itself
  double total = 0;        // nll + λ·latent_norm
};

template <class T>
class StarFlowModel {
 public:
  // tp: the tensor-parallel group the deep block is split over (nullptr or one rank: the whole model here).
  // Every rank of the group must run forward, backward and sampling together (they all-reduce).
  // split_shallow: split the shallow blocks over the TP group too (they are a quarter of the FLOPs of the
  // 3.86B config; run whole, every TP rank computes them redundantly).
  explicit StarFlowModel(const FlowConfig& cfg, Communicator* tp = nullptr, bool split_shallow = false);
  StarFlowModel(StarFlowModel&&) noexcept;
  ~StarFlowModel();

  const FlowConfig& config() const { return cfg_; }
  const ParameterLayout& layout() const { return layout_; }
  // The non-const access counts as a change of the parameters (parameters_version()), as PyTorch's tensor
  // version counter counts in-place ops: take it where they are written, not once to keep for later writes.
  std::vector<T>& parameters() {
    ++version_;
    return params_;
  }
  const std::vector<T>& parameters() const { return params_; }
  uint64_t parameters_version() const { return version_; }
  std::vector<T>& gradients() { return grads_; }
  const std::vector<T>& gradients() const { return grads_; }
  void zero_gradients();
  Communicator* tensor_parallel_group() const { return tp_; }
  int tensor_parallel_size() const { return tp_ ? tp_->size() : 1; }
  // The official initialisation (spec §2.1): Linear U(±1/√fan_in) for weights and biases, sos N(0,1),
  // LayerNorm (1, 0), final_norm 0, proj_out weight 0 (its bias keeps the default init).
  void init_parameters(uint64_t seed);

  // x: [B, Cin, H, W] (already noise-augmented); y: [B, L, E] or nullptr for unconditional models.
  // Keeps every activation for backward(). λ: latent_norm_regularization.
  LossParts forward(const T* x, const T* y, int64_t B, double latent_norm_lambda);
  // Gradient of the last forward's total loss: accumulates into gradients() (unless parameter_gradients
  // is false: denoising needs only the input gradient) and, when dx is non-null, writes ∂loss/∂x.
  // `ready` hears of each parameter as soon as its gradient is final (overlapped data-parallel reduction).
  void backward(T* dx, bool parameter_gradients = true, GradientReadyObserver* ready = nullptr);

  // Per-sample NLL of the last forward (per dimension, in nats, without the ½·log 2π constant): what
  // likelihood evaluation and the Bayes classifier (argmin over classes) need.
  std::vector<double> per_sample_nll() const;

  int64_t batch() const { return batch_; }
  const std::vector<T>& z() const { return z_; }                        // [B, Cin, H, W]
  const std::vector<T>& logdet(int64_t k) const { return logdets_[k]; }  // [B, T, D], permuted order
  const std::vector<T>& outputs(int64_t k) const { return outputs_[k]; } // k = 0..K, [B, h, w, D]
  const cpu::RopeTable<T>& rope_table(bool conditioned) const { return conditioned ? rope_text_ : rope_plain_; }
  const MetaBlock<T>& block(int64_t k) const { return blocks_[k]; }

  // Sampling's copy of block k's decode linear weights in the small-batch kernel's tile layout, at their
  // parameter offsets (MetaBlock::tile_decode_weights), written on first use and again whenever the
  // parameters changed since; nullptr where the kernel does not apply (double, no AVX2). Tiling a block
  // costs about what decoding two of its tokens does, so it is kept between sampling calls rather than
  // redone in each. Costs one more copy of the parameters' memory once the model has sampled.
  const T* decode_weights(int64_t k) const;

 private:
  FlowConfig cfg_;
  Communicator* tp_ = nullptr;
  ParameterLayout layout_;
  std::vector<MetaBlock<T>> blocks_;
  std::vector<T> params_, grads_;
  cpu::RopeTable<T> rope_plain_, rope_text_;
  uint64_t version_ = 0;
  struct TiledWeights;
  mutable std::unique_ptr<TiledWeights> tiled_;  // a cache: filled by the const decode_weights()
  // Forward state.
  int64_t batch_ = 0;
  double lambda_ = 0;
  const T* y_ = nullptr;
  std::vector<BlockActivations<T>> acts_;
  std::vector<std::vector<T>> outputs_, logdets_;
  std::vector<T> z_;
  BlockScratch<T> scratch_;
};

}  // namespace starflow::core
