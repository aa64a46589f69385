// One STARFlow flow block ("MetaBlock", spec §1.3, §2): permute → [text prefix; proj_in([sos, v₀..v_{T−2}])]
// → transformer layers → final RMSNorm → proj_out → flow head → un-permute. Forward is the data→noise
// direction (teacher-forced, parallel over tokens).
#pragma once
#include <cstdint>
#include <vector>

#include "core/communicator.h"
#include "core/models/flow_config.h"
#include "core/models/gradient_ready.h"
#include "core/models/transformer_layer.h"
#include "core/ops/cpu/flow_head.h"

namespace starflow::core {

template <class T>
struct BlockActivations {
  std::vector<T> v, inp, final_out, h_img, h_norm, rrms, o, z, emb;
  std::vector<LayerActivations<T>> layers;
  const T* y = nullptr;  // conditioning [B, L, E] of the last forward (conditioned blocks only)
};

template <class T>
struct BlockScratch {
  std::vector<T> dz_perm, dv, d_o, d_h_norm, d_h_img, d_seq_a, d_seq_b, d_emb, d_inp;
  LayerScratch<T> layer;
};

// Per-block sampling state: one KV cache per layer over the whole [text; image] sequence, and buffers.
template <class T>
struct DecodeState {
  int64_t batch = 0;
  std::vector<cpu::KVCache<T>> caches;
  std::vector<cpu::KVCache<T>> prefix_caches;  // one group of samples' text prefix (begin_decode)
  std::vector<T> prefix_y;                      // the distinct conditions, when some samples share one
  DecodeScratch<T> scratch;
  std::vector<T> seq_a, seq_b, emb, h, h_norm, rrms, o;
  std::vector<T> xt_io;  // the fused step's transposed proj_in / proj_out inputs
  // Guidance: samples [batch/2, batch) are the null-condition copies of [0, batch/2) and receive the same
  // inputs (the sampler keeps them equal), so their first layer's LayerNorm and QKV can be copied.
  bool paired_halves = false;
};

template <class T>
class MetaBlock {
 public:
  // tp: the tensor-parallel group. The deep block (the last, where most of the FLOPs are) is split over it;
  // the shallow blocks too when split_shallow (else each TP rank runs them whole). nullptr: no TP.
  MetaBlock(const FlowConfig& cfg, int64_t index, ParameterLayout& layout, Communicator* tp = nullptr,
            bool split_shallow = false);

  // u: [B, T, D] raster-order input; y: [B, L, E] (conditioned blocks; ignored otherwise).
  // Writes out [B, T, D] (raster order) and logdet [B, T, D] (−log σ, in this block's permuted order).
  void forward(const T* P, BlockActivations<T>& a, const T* u, const T* y, T* out, T* logdet, int64_t B,
               const cpu::RopeTable<T>& rope) const;
  // dout: gradient w.r.t. out [B, T, D]; dlogdet: the gradient of the loss w.r.t. every logdet element.
  // Accumulates parameter gradients into G and writes du [B, T, D] (may not alias dout). `ready`, when
  // given, hears of each parameter as soon as its gradient is final.
  void backward(const T* P, T* G, const BlockActivations<T>& a, BlockScratch<T>& s, const T* dout, T dlogdet, T* du,
                int64_t B, const cpu::RopeTable<T>& rope, GradientReadyObserver* ready = nullptr) const;

  // Sampling (reverse direction). begin_decode sizes the caches for B rows and, for a conditioned block,
  // runs the text prefix y [B, L, E] through every layer once. decode_chunk embeds the inputs inp [B, n, D]
  // of image positions start..start+n−1 (the SOS vector or the previously generated tokens), runs them
  // through the cached layers and writes their σ and μ [B, n, D]. Re-running a chunk at the same start
  // overwrites its cache entries (Jacobi iterations).
  void begin_decode(const T* P, DecodeState<T>& st, const T* y, int64_t B, const cpu::RopeTable<T>& rope) const;
  void decode_chunk(const T* P, DecodeState<T>& st, const T* inp, int64_t start, int64_t n, T* sigma, T* mu,
                    const cpu::RopeTable<T>& rope) const;
  const T* sos(const T* P) const { return P + sos_; }
  // Writes this block's decode linear weights from P into dst (a buffer the size of the parameters, same
  // offsets) in the small-batch kernel's tile layout; decoding reads them from there once
  // st.scratch.tiled = dst. Float with the AVX2 kernel only (tiles_decode_weights()).
  void tile_decode_weights(const T* P, T* dst) const;
  static bool tiles_decode_weights();
  // Whether decode_chunk runs `rows` rows as one fused parallel region (decode_chunk_team).
  bool decodes_as_team(int64_t rows) const;

  bool conditioned() const { return conditioned_; }
  bool tensor_parallel() const { return !layers_.empty() && layers_[0].tp != nullptr; }
  bool flips() const { return flip_; }
  int64_t seq_len() const { return L_ + T_; }
  int64_t tokens() const { return T_; }
  int64_t token_dim() const { return D_; }

 private:
  // Runs rows [B, n, C] at sequence positions pos..pos+n−1 through every layer with the caches; the
  // result is left in st.seq_a. Without outputs the last layer only stores its keys and values.
  void run_cached_layers(const T* P, DecodeState<T>& st, std::vector<cpu::KVCache<T>>& caches, int64_t B, int64_t n,
                         int64_t pos, const cpu::RopeTable<T>& rope, bool outputs = true) const;
  // decode_chunk as one parallel region of team ops (float, every layer able to decode as a team): the
  // embedding, the layers, the final norm, proj_out and the head without a fork/join or a serial op between
  // them. Returns false (nothing done) where it does not apply.
  bool decode_chunk_team(const T* P, DecodeState<T>& st, const T* inp, int64_t start, int64_t n, T* sigma, T* mu,
                         const cpu::RopeTable<T>& rope) const;

  int64_t index_, T_, D_, C_, L_, E_;
  bool flip_, conditioned_, final_norm_;
  cpu::FlowHeadOptions head_;
  int64_t sos_, proj_in_w_, proj_in_b_, proj_out_w_, proj_out_b_, proj_txt_w_ = -1, proj_txt_b_ = -1, final_norm_w_ = -1;
  std::vector<TransformerLayer<T>> layers_;
};

}  // namespace starflow::core
