// One transformer layer of a flow block (spec §2.2, golden README §7.4 for the switches):
// x ← x + P(proj(attn(rope(qknorm(qkv(N(x))))))); x ← x + P'(mlp(N'(x))), where N, N' are the pre-norms
// (LayerNorm, RMSNorm or none), P, P' the optional post-norms, and the MLP is fc2(gelu(fc1(a))) or the
// official "SwiGLU" down(gelu_tanh(gate(a)) ⊙ up(a)). Attention may have fewer KV heads than query heads
// (grouped-query) and an inner width heads·head_dim other than C. Forward saves its activations; backward
// accumulates parameter gradients into the flat gradient buffer and writes the input gradient. Written once
// against a backend (core/backends/*: the ops and the memory they run on).
// Tensor parallel (Megatron): QKV, fc1 (or gate and up) are column-parallel (a rank holds n_head/p heads and
// 4C/p hidden units), proj and fc2 (or down) row-parallel; the linear types own the all-reduces
// (core/models/parallel_linear.h). Norms and the row-parallel biases are replicated.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "core/models/flow_config.h"
#include "core/models/parallel_linear.h"
#include "core/models/parameter_layout.h"

namespace starflow::core {

// The official attention scale is (dh^-1/4)², which differs from 1/√dh in the last bit of a double.
inline double attention_scale(int64_t head_dim) {
  const double q = std::pow(static_cast<double>(head_dim), -0.25);
  return q * q;
}
constexpr double kLayerNormEps = 1e-5;
constexpr double kRmsNormEps = 1e-6;  // every RMSNorm of the official model (final, pre, post, q and k norms)

// The shape and switches of a layer (whole-layer sizes; a TP rank holds 1/p of the heads and hidden units).
struct LayerOptions {
  int64_t C = 0, heads = 0, kv_heads = 0, head_dim = 0;
  NormType norm = NormType::kLayerNorm;
  bool qk_norm = false, post_norm = false, swiglu = false, bias = true;
  bool causal = true;  // false: bidirectional attention (the learnable denoiser)
  // The layers of block k of a flow under cfg.
  static LayerOptions of_block(const FlowConfig& cfg, int64_t k);
};

template <class Backend>
struct TransformerLayer;

template <class Backend>
struct LayerActivations {
  using T = typename Backend::Scalar;
  template <class U>
  using Buffer = typename Backend::template Buffer<U>;
  // qkv: after QK-norm and RoPE; qkv_full: with the KV heads repeated (grouped-query); qk_raw: q and k before
  // the QK-norm ([rows·heads, dh] then [rows·kv_heads, dh]); attn_proj, mlp_out: the branches before the
  // post-norms; fc1, up: the MLP's (gate and) up projections; gelu: the activation fc2 reads; qkv_split: q, k
  // and v one after the other (what the bidirectional attention op takes).
  Buffer<T> input, ln1, qkv, qkv_full, qk_raw, qk_normed, qkv_split, probs, attn, attn_proj, mid, ln2, fc1, up, gelu,
      mlp_out;
  Buffer<typename Backend::Stat> ln1_mean, ln1_rstd, ln2_mean, ln2_rstd, qk_rrms, post_attn_rrms, post_mlp_rrms;
  void resize(const TransformerLayer<Backend>& layer, int64_t B, int64_t S);
};

// Backward scratch shared by all layers of a model.
template <class Backend>
struct LayerScratch {
  template <class U>
  using Buffer = typename Backend::template Buffer<U>;
  Buffer<typename Backend::Scalar> d_mid, d_norm, d_post, d_attn, d_qkv, d_qkv_full, d_qkv_split, d_qk_a, d_qk_b,
      d_hidden, d_fc1, d_up, d_probs;
  void resize(const TransformerLayer<Backend>& layer, int64_t B, int64_t S);
};

// Buffers of the op-by-op cached (sampling) path, sized for the largest chunk (grown, never shrunk: one set
// serves every layer of every block).
template <class Backend>
struct DecodeScratch {
  template <class U>
  using Buffer = typename Backend::template Buffer<U>;
  Buffer<typename Backend::Scalar> ln, qkv, qk_raw, qk_normed, attn, mid, branch, hidden;
  Buffer<typename Backend::Stat> mean, rstd, qk_rrms, post_rrms;
  void resize(const TransformerLayer<Backend>& layer, int64_t rows);
};

// A norm's tensors (bias −1: none; weight −1 too: no norm).
struct NormParams {
  int64_t weight = -1, bias = -1;
};

template <class Backend>
struct TransformerLayer {
  using T = typename Backend::Scalar;
  using Stat = typename Backend::Stat;
  using RopeTable = typename Backend::RopeTable;
  using KVCache = typename Backend::KVCache;
  using DecodeWeights = typename Backend::DecodeWeights;

  const Backend* be = nullptr;
  NormParams ln1, ln2;
  int64_t q_norm = -1, k_norm = -1, post_attn = -1, post_mlp = -1;  // RMSNorm gains (−1: switch off)
  ColumnParallelLinear<Backend> qkv, fc1, up;  // fc1: main.0, or gate_proj with SwiGLU; up: up_proj (SwiGLU only)
  RowParallelLinear<Backend> proj, fc2;        // fc2: main.2, or down_proj with SwiGLU
  LayerOptions opt;
  int64_t C = 0;          // model width (norms, residual stream)
  int64_t n_head = 0;     // query heads on this rank
  int64_t n_kv_head = 0;  // key/value heads on this rank
  int64_t head_dim = 0;
  int64_t hidden = 0;     // MLP hidden units on this rank
  int64_t inner() const { return n_head * head_dim; }
  int64_t qkv_width() const { return (n_head + 2 * n_kv_head) * head_dim; }
  bool grouped() const { return n_kv_head != n_head; }
  bool tensor_parallel() const { return qkv.tp != nullptr; }

  // Registers the layer's tensors under `prefix` (official names, state_dict order); tp_rank/parts: this rank's
  // share of the column- and row-parallel weights (parts 1: the whole layer).
  static TransformerLayer add_to(const Backend& backend, ParameterLayout& layout, const std::string& prefix,
                                 const LayerOptions& options, Communicator* tp, int tp_rank, int parts);
  // Every tensor's offset, in the order backward finishes them.
  std::vector<int64_t> offsets() const;
  // The linears sampling runs (the decode weights a backend may keep in its own layout): weight offset, in, out.
  struct DecodeLinear {
    int64_t weight, in, out;
  };
  std::vector<DecodeLinear> decode_linears() const;

  // x, out: [B, S, C]; out may not alias x.
  void forward(const T* P, LayerActivations<Backend>& a, const T* x, T* out, int64_t B, int64_t S,
               const RopeTable& rope) const;
  // dout: [B, S, C] gradient of out; dx: [B, S, C] written (may not alias dout).
  void backward(const T* P, T* G, const LayerActivations<Backend>& a, LayerScratch<Backend>& s, const T* dout, T* dx,
                int64_t B, int64_t S, const RopeTable& rope) const;
  // Sampling: n new positions per sample at absolute sequence positions start..start+n−1, attending to the
  // layer's KV cache (which receives their keys and values, n_kv_head heads). x, out: [B, n, C]; out may not
  // alias x. The decode linears read their weights from W (the backend's decode weights), everything else from
  // P. temperature divides every attention logit (the official `attn_temp` of sequential decoding).
  void forward_cached(const T* P, const DecodeWeights& W, KVCache& cache, DecodeScratch<Backend>& s, const T* x,
                      T* out, int64_t B, int64_t n, int64_t start, const RopeTable& rope,
                      double temperature = 1.0) const;
  // The part of forward_cached that fills the cache: norm, QKV, QK-norm, RoPE on k, keys and values stored; for
  // positions whose layer output nobody reads (the text prefix in a block's last layer).
  void store_kv(const T* P, const DecodeWeights& W, KVCache& cache, DecodeScratch<Backend>& s, const T* x, int64_t B,
                int64_t n, int64_t start, const RopeTable& rope) const;

 private:
  // A pre-norm of x [rows, C] into out; returns what the next op reads (x itself without a pre-norm).
  const T* norm_forward(const NormParams& n, const T* P, T* out, Stat* mean, Stat* rstd, const T* x,
                        int64_t rows) const;
  // Its backward: dx += ∂/∂x (accumulated), gain and bias gradients into G (null: none).
  void norm_backward(const NormParams& n, const T* P, T* G, T* dx, const T* dnorm, const T* x, const Stat* mean,
                     const Stat* rstd, int64_t rows) const;
  // QK-norm of the q and k heads inside qkv [rows, qkv_width] (in place); raw, normed: [rows·(heads+kv), dh].
  void qk_norm_forward(const T* P, T* qkv, T* raw, T* normed, Stat* rrms, int64_t rows) const;
  void qk_norm_backward(const T* P, T* G, T* dqkv, const T* raw, const Stat* rrms, T* scratch_a, T* scratch_b,
                        int64_t rows) const;
  // branch [rows, C] → out = residual + RMS(branch) (post-norm) into out; rrms saved.
  void post_norm_add(int64_t gain, const T* P, T* out, Stat* rrms, const T* branch, const T* residual,
                     int64_t rows) const;
};

}  // namespace starflow::core
