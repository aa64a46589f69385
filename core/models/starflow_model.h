// The STARFlow model (deep-shallow stack of MetaBlocks, spec §3) with its training loss (§4.1): forward
// data→noise with every intermediate kept, the NLL and the latent-norm regulariser, and the backward pass
// into one flat gradient buffer. Written once against a backend (core/backends/*), which owns the memory the
// buffers live in and the ops that run on them: StarFlowModel<T> is the CPU model (float for speed, double for
// gradient checks), FlowModel<CudaBackend<...>> the GPU one.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backends/cpu/cpu_backend.h"
#include "core/models/flow_config.h"
#include "core/models/meta_block.h"
#include "core/models/parameter_layout.h"
#include "core/models/self_denoiser.h"

namespace starflow::core {

struct LossParts {
  double nll = 0;          // loss_z + loss_logdet  (= NLL per dim in nats − ½·log 2π)
  double z = 0;            // ½·mean(z²)
  double logdet = 0;       // −Σ_k mean(logdet_k) = Σ_k mean(log σ_k)
  double latent_norm = 0;  // Σ_{k<K} mean(outputs[k]²), outputs[0] = the input itself
  double total = 0;        // nll + λ·latent_norm
};

template <class Backend>
class FlowModel {
 public:
  using T = typename Backend::Scalar;
  using Buffer = typename Backend::template Buffer<T>;
  using RopeTable = typename Backend::RopeTable;

  // tp: the tensor-parallel group the deep block is split over (nullptr or one rank: the whole model here).
  // Every rank of the group must run forward, backward and sampling together (they all-reduce).
  // split_shallow: split the shallow blocks over the TP group too (they are a quarter of the FLOPs of the
  // 3.86B config; run whole, every TP rank computes them redundantly).
  explicit FlowModel(const FlowConfig& cfg, Communicator* tp = nullptr, bool split_shallow = false);
  FlowModel(FlowModel&&) noexcept;
  ~FlowModel();

  const FlowConfig& config() const { return cfg_; }
  const ParameterLayout& layout() const { return layout_; }
  Backend& backend() const { return *be_; }
  // The non-const access counts as a change of the parameters (parameters_version()), as PyTorch's tensor
  // version counter counts in-place ops: take it where they are written, not once to keep for later writes.
  Buffer& parameters() {
    ++version_;
    return params_;
  }
  const Buffer& parameters() const { return params_; }
  uint64_t parameters_version() const { return version_; }
  Buffer& gradients() { return grads_; }
  const Buffer& gradients() const { return grads_; }
  void zero_gradients();
  Communicator* tensor_parallel_group() const { return tp_; }
  int tensor_parallel_size() const { return tp_ ? tp_->size() : 1; }
  // The official initialisation (spec §2.1): Linear U(±1/√fan_in) for weights and biases, sos N(0,1),
  // LayerNorm (1, 0), final_norm 0, proj_out weight 0 (its bias keeps the default init).
  void init_parameters(uint64_t seed);

  // x: [B, Cin, H, W] (already noise-augmented); y: [B, L, E] or nullptr for unconditional models; both in the
  // backend's memory. Keeps every activation for backward(). λ: latent_norm_regularization.
  LossParts forward(const T* x, const T* y, int64_t B, double latent_norm_lambda);
  // Gradient of the last forward's total loss: accumulates into gradients() (unless parameter_gradients
  // is false: denoising needs only the input gradient) and, when dx is non-null, writes ∂loss/∂x.
  // `ready` hears of each parameter as soon as its gradient is final (overlapped data-parallel reduction).
  void backward(T* dx, bool parameter_gradients = true, GradientReadyObserver* ready = nullptr);

  // Layer recompute (activation checkpointing) from the next forward on: each layer keeps only its input and
  // recomputes the rest in backward; the same gradients, bit for bit, for one layer's activations per block.
  void set_recompute(bool on) { recompute_ = on; }
  bool recompute() const { return recompute_; }
  // Bytes the last forward keeps for backward (every block's activations, the outputs and log-dets).
  int64_t activation_bytes() const;

  // The learnable self-denoiser (config learnable_self_denoiser; its parameters are in the same flat buffers).
  // denoiser_forward: its prediction for x [B, Cin, H, W] (image-shaped, denoiser_prediction()) and, with a
  // target (the flow's σ_n·numel·∂loss/∂x), the loss mean((pred − target)²), returned; denoiser_backward then
  // accumulates that loss's gradient into the denoiser's parameters only. x, y, target stay the caller's until
  // denoiser_backward.
  bool has_denoiser() const { return denoiser_ != nullptr; }
  double denoiser_forward(const T* x, const T* y, const T* target, int64_t B);
  void denoiser_backward();
  const Buffer& denoiser_prediction() const { return den_pred_; }

  // Per-sample NLL of the last forward (per dimension, in nats, without the ½·log 2π constant): what
  // likelihood evaluation and the Bayes classifier (argmin over classes) need.
  std::vector<double> per_sample_nll() const;

  int64_t batch() const { return batch_; }
  const Buffer& z() const { return z_; }                        // [B, Cin, H, W]
  const Buffer& logdet(int64_t k) const { return logdets_[k]; }  // [B, T, D], permuted order
  const Buffer& outputs(int64_t k) const { return outputs_[k]; } // k = 0..K, [B, h, w, D]
  const RopeTable& rope_table(bool conditioned) const { return conditioned ? rope_text_ : rope_plain_; }
  const MetaBlock<Backend>& block(int64_t k) const { return blocks_[k]; }

  // The weights sampling's decode linears read for block k (Backend::decode_weights: on the CPU a copy in the
  // small-batch kernel's tile layout, kept between calls and refreshed when the parameters changed).
  typename Backend::DecodeWeights decode_weights(int64_t k) const { return be_->decode_weights(*this, k); }

 private:
  FlowConfig cfg_;
  Communicator* tp_ = nullptr;
  std::unique_ptr<Backend> be_;  // on the heap: the blocks and layers keep its address across moves
  ParameterLayout layout_;
  std::vector<MetaBlock<Backend>> blocks_;
  Buffer params_, grads_;
  RopeTable rope_plain_, rope_text_;
  uint64_t version_ = 0;
  bool recompute_ = false;
  // Forward state.
  int64_t batch_ = 0;
  double lambda_ = 0;
  const T* y_ = nullptr;
  std::vector<BlockActivations<Backend>> acts_;
  std::vector<Buffer> outputs_, logdets_;
  Buffer z_, d_out_, d_in_;
  BlockScratch<Backend> scratch_;
  std::unique_ptr<SelfDenoiser<Backend>> denoiser_;
  Buffer den_u_, den_tokens_, den_pred_, den_diff_;  // patchified input, prediction (tokens, image), pred − target
  int64_t den_batch_ = 0;
};

// The CPU model.
template <class T>
using StarFlowModel = FlowModel<CpuBackend<T>>;

}  // namespace starflow::core
