// One pre-norm transformer layer of a flow block (spec §2.2): x ← x + proj(attn(rope(qkv(LN(x)))));
// x ← x + fc2(gelu(fc1(LN(x)))). Forward saves its activations; backward accumulates parameter gradients
// into the flat gradient buffer and writes the input gradient. Written once against a backend
// (core/backends/*: the ops and the memory they run on).
// Tensor parallel (Megatron): QKV and fc1 are column-parallel (a rank holds n_head/p heads and 4C/p hidden
// units), proj and fc2 row-parallel; the linear types own the all-reduces (core/models/parallel_linear.h).
// LayerNorms and the row-parallel biases are replicated.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "core/models/parallel_linear.h"
#include "core/models/parameter_layout.h"

namespace starflow::core {

// The official attention scale is (dh^-1/4)², which differs from 1/√dh in the last bit of a double.
inline double attention_scale(int64_t head_dim) {
  const double q = std::pow(static_cast<double>(head_dim), -0.25);
  return q * q;
}
constexpr double kLayerNormEps = 1e-5;

template <class Backend>
struct LayerActivations {
  using T = typename Backend::Scalar;
  template <class U>
  using Buffer = typename Backend::template Buffer<U>;
  Buffer<T> input, ln1, qkv, probs, attn, mid, ln2, fc1, gelu;
  Buffer<typename Backend::Stat> ln1_mean, ln1_rstd, ln2_mean, ln2_rstd;
  // C: model width; inner: this rank's attention width (heads × head_dim); hidden: its MLP width.
  void resize(int64_t B, int64_t S, int64_t C, int64_t inner, int64_t hidden, int64_t n_head);
};

// Backward scratch shared by all layers of a model.
template <class Backend>
struct LayerScratch {
  template <class U>
  using Buffer = typename Backend::template Buffer<U>;
  Buffer<typename Backend::Scalar> d_mid, d_norm, d_attn, d_qkv, d_hidden, d_fc1, d_probs;
  void resize(int64_t B, int64_t S, int64_t C, int64_t inner, int64_t hidden, int64_t n_head);
};

// Buffers of the op-by-op cached (sampling) path, sized for the largest chunk.
template <class Backend>
struct DecodeScratch {
  template <class U>
  using Buffer = typename Backend::template Buffer<U>;
  Buffer<typename Backend::Scalar> ln, qkv, attn, mid, hidden;
  Buffer<typename Backend::Stat> mean, rstd;
  void resize(int64_t rows, int64_t C);
};

struct LayerNormParams {
  int64_t weight = -1, bias = -1;
};

template <class Backend>
struct TransformerLayer {
  using T = typename Backend::Scalar;
  using RopeTable = typename Backend::RopeTable;
  using KVCache = typename Backend::KVCache;
  using DecodeWeights = typename Backend::DecodeWeights;

  const Backend* be = nullptr;
  LayerNormParams ln1, ln2;
  ColumnParallelLinear<Backend> qkv, fc1;
  RowParallelLinear<Backend> proj, fc2;
  int64_t C = 0;         // model width (LayerNorms, residual stream)
  int64_t n_head = 0;    // heads on this rank
  int64_t head_dim = 0;
  int64_t hidden = 0;    // MLP hidden units on this rank
  int64_t inner() const { return n_head * head_dim; }
  bool tensor_parallel() const { return qkv.tp != nullptr; }

  // Registers the layer's tensors under `prefix` (official names, named_parameters order); tp_rank/parts:
  // this rank's share of the column- and row-parallel weights (parts 1: the whole layer).
  static TransformerLayer add_to(const Backend& backend, ParameterLayout& layout, const std::string& prefix,
                                 int64_t C, int64_t head_dim, Communicator* tp, int tp_rank, int parts);
  // Every tensor's offset, in the order backward finishes them.
  std::vector<int64_t> offsets() const;

  // x, out: [B, S, C]; out may not alias x.
  void forward(const T* P, LayerActivations<Backend>& a, const T* x, T* out, int64_t B, int64_t S,
               const RopeTable& rope) const;
  // dout: [B, S, C] gradient of out; dx: [B, S, C] written (may not alias dout).
  void backward(const T* P, T* G, const LayerActivations<Backend>& a, LayerScratch<Backend>& s, const T* dout, T* dx,
                int64_t B, int64_t S, const RopeTable& rope) const;
  // Sampling: n new positions per sample at absolute sequence positions start..start+n−1, attending to the
  // layer's KV cache (which receives their keys and values). x, out: [B, n, C]; out may not alias x. The
  // decode linears read their weights from W (the backend's decode weights), everything else from P.
  void forward_cached(const T* P, const DecodeWeights& W, KVCache& cache, DecodeScratch<Backend>& s, const T* x,
                      T* out, int64_t B, int64_t n, int64_t start, const RopeTable& rope) const;
  // The part of forward_cached that fills the cache: LayerNorm, QKV, RoPE on k, keys and values stored; for
  // positions whose layer output nobody reads (the text prefix in a block's last layer).
  void store_kv(const T* P, const DecodeWeights& W, KVCache& cache, DecodeScratch<Backend>& s, const T* x, int64_t B,
                int64_t n, int64_t start, const RopeTable& rope) const;
};

}  // namespace starflow::core
