// One STARFlow flow block ("MetaBlock", spec §1.3, §2): permute → [text prefix; proj_in([sos, v₀..v_{T−2}])]
// → transformer layers → final RMSNorm → proj_out → flow head → un-permute. Without the SOS token (`sos:
// false`) the input is v itself and the head's outputs are shifted instead ([0, o₀..o_{T−2}]: token 0 passes
// through with σ = 1). A shallow block with no layers is the official IdentityBlock. Forward is the data→noise
// direction (teacher-forced, parallel over tokens); the decode methods are the noise→data direction, one chunk
// of tokens at a time against KV caches. Written once against a backend; the backend may take over a decode
// step with its own fast path (core/backends/cpu/cpu_decoder.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "core/communicator.h"
#include "core/models/flow_config.h"
#include "core/models/gradient_ready.h"
#include "core/models/transformer_layer.h"
#include "core/ops/flow_head_options.h"

namespace starflow::core {

template <class Backend>
struct BlockActivations {
  template <class U>
  using Buffer = typename Backend::template Buffer<U>;
  using T = typename Backend::Scalar;
  Buffer<T> v, inp, final_out, h_img, h_norm, o, o_raw, zero_row, z, emb;  // o: the head's input; o_raw: proj_out's
  Buffer<typename Backend::Stat> rrms;
  std::vector<LayerActivations<Backend>> layers;
  const T* y = nullptr;  // conditioning [B, L, E] of the last forward (conditioned blocks only)
  // Layer recompute (activation checkpointing): each layer keeps only its input, and one set of activations
  // (`work`) serves every layer's forward, then each layer's recomputed forward in backward (which fills it
  // again: hence mutable). Same gradients, bit for bit; one layer's activations instead of every layer's.
  bool recompute = false;
  mutable LayerActivations<Backend> work;
  mutable Buffer<T> recompute_out;
};

template <class Backend>
struct BlockScratch {
  template <class U>
  using Buffer = typename Backend::template Buffer<U>;
  Buffer<typename Backend::Scalar> dz_perm, dv, d_o, d_o_raw, d_h_norm, d_h_img, d_seq_a, d_seq_b, d_emb, d_inp;
  LayerScratch<Backend> layer;
};

// Per-block sampling state: one KV cache per layer over the whole [text; image] sequence, and buffers.
template <class Backend>
struct DecodeState {
  template <class U>
  using Buffer = typename Backend::template Buffer<U>;
  int64_t batch = 0;
  std::vector<typename Backend::KVCache> caches;
  DecodeScratch<Backend> scratch;
  Buffer<typename Backend::Scalar> seq_a, seq_b, h_norm, o;
  Buffer<typename Backend::Stat> rrms;
  typename Backend::DecodeWeights weights;  // what the decode linears read (Backend::decode_weights)
  // Guidance: samples [batch/2, batch) are the null-condition copies of [0, batch/2) and receive the same
  // inputs (the sampler keeps them equal), so a fast path may compute their first layer's LayerNorm and QKV
  // once.
  bool paired_halves = false;
  typename Backend::DecodeExtra fast;  // the backend's fast path's own buffers
  double attention_temperature = 1.0;  // divides every attention logit (the official attn_temp, sequential only)
};

// Where a block's own tensors sit in the flat buffers, and its sizes.
struct BlockParams {
  int64_t sos = -1, proj_in_w = -1, proj_in_b = -1, proj_out_w = -1, proj_out_b = -1;
  int64_t proj_txt_w = -1, proj_txt_b = -1, final_norm_w = -1;
  int64_t T = 0, D = 0, C = 0, L = 0, E = 0;  // tokens, token dim, width, text tokens (0: unconditioned), text dim
};

template <class Backend>
class MetaBlock {
 public:
  using T = typename Backend::Scalar;
  using RopeTable = typename Backend::RopeTable;

  // tp: the tensor-parallel group. The deep block (the last, where most of the FLOPs are) is split over it;
  // the shallow blocks too when split_shallow (else each TP rank runs them whole). nullptr: no TP.
  MetaBlock(const Backend& backend, const FlowConfig& cfg, int64_t index, ParameterLayout& layout,
            Communicator* tp = nullptr, bool split_shallow = false);

  // u: [B, T, D] raster-order input; y: [B, L, E] (conditioned blocks; ignored otherwise).
  // Writes out [B, T, D] (raster order) and logdet [B, T, D] (−log σ, in this block's permuted order; zeros for an
  // identity block).
  void forward(const T* P, BlockActivations<Backend>& a, const T* u, const T* y, T* out, T* logdet, int64_t B,
               const RopeTable& rope) const;
  // dout: gradient w.r.t. out [B, T, D]; dlogdet: the gradient of the loss w.r.t. every logdet element.
  // Accumulates parameter gradients into G and writes du [B, T, D] (may not alias dout). `ready`, when
  // given, hears of each parameter as soon as its gradient is final.
  void backward(const T* P, T* G, const BlockActivations<Backend>& a, BlockScratch<Backend>& s, const T* dout,
                double dlogdet, T* du, int64_t B, const RopeTable& rope, GradientReadyObserver* ready = nullptr) const;

  // Sampling (reverse direction). begin_decode sizes the caches for B rows and, for a conditioned block,
  // runs the text prefix y [B, L, E] through every layer once. decode_chunk embeds the inputs inp [B, n, D]
  // of image positions start..start+n−1 (the SOS vector or the previously generated tokens), runs them
  // through the cached layers and writes their σ and μ [B, n, D]. Re-running a chunk at the same start
  // overwrites its cache entries (Jacobi iterations). st.weights must be set (the sampler does).
  void begin_decode(const T* P, DecodeState<Backend>& st, const T* y, int64_t B, const RopeTable& rope) const;
  void decode_chunk(const T* P, DecodeState<Backend>& st, const T* inp, int64_t start, int64_t n, T* sigma, T* mu,
                    const RopeTable& rope) const;
  // The op-by-op path: rows [B, n, C] in st.seq_a at sequence positions pos..pos+n−1 through every layer with
  // the caches; the result is left in st.seq_a. Without outputs the last layer only stores its keys and values.
  void run_cached_layers(const T* P, DecodeState<Backend>& st, std::vector<typename Backend::KVCache>& caches,
                         int64_t B, int64_t n, int64_t pos, const RopeTable& rope, bool outputs = true) const;
  const T* sos(const T* P) const { return P + p_.sos; }
  // Whether the block has the SOS token (else position t's outputs are token t + 1's σ and μ; token 0 has
  // σ = 1, μ = 0), and whether it is an identity block (no parameters, no decoding).
  bool has_sos() const { return p_.sos >= 0; }
  bool identity() const { return identity_; }

  const Backend& backend() const { return *be_; }
  const BlockParams& params() const { return p_; }
  const std::vector<TransformerLayer<Backend>>& layers() const { return layers_; }
  const FlowHeadOptions& head() const { return head_; }
  bool final_norm() const { return final_norm_; }
  bool conditioned() const { return conditioned_; }
  bool tensor_parallel() const { return !layers_.empty() && layers_[0].tensor_parallel(); }
  bool flips() const { return flip_; }
  int64_t seq_len() const { return p_.L + p_.T; }
  int64_t tokens() const { return p_.T; }
  int64_t token_dim() const { return p_.D; }

 private:
  const Backend* be_;
  int64_t index_;
  BlockParams p_;
  bool flip_, conditioned_, final_norm_, identity_;
  FlowHeadOptions head_;
  std::vector<TransformerLayer<Backend>> layers_;
};

}  // namespace starflow::core
