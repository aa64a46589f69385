// One pre-norm transformer layer of a flow block (spec §2.2): x ← x + proj(attn(rope(qkv(LN(x)))));
// x ← x + fc2(gelu(fc1(LN(x)))). Forward saves its activations; backward accumulates parameter
// gradients into the flat gradient buffer and writes the input gradient.
// Tensor parallel (Megatron): with a TP communicator of p ranks the layer holds n_head/p heads of QKV and
// 4C/p hidden units of fc1 (column-parallel) and the matching input columns of proj and fc2
// (row-parallel); one all-reduce after each row-parallel layer in forward, and after each column-parallel
// layer's input gradient in backward. LayerNorms and the row-parallel biases are replicated.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "core/models/parameter_layout.h"
#include "core/ops/cpu/attention_cached.h"
#include "core/ops/cpu/linear_small_batch.h"
#include "core/ops/cpu/rope.h"

namespace starflow::core {

// Offsets of one layer's tensors in the flat parameter buffer.
struct LayerParams {
  int64_t ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
  // tp_rank/tp_size: this rank's share of the column- and row-parallel weights (1: the whole layer).
  static LayerParams add_to(ParameterLayout& layout, const std::string& prefix, int64_t C, int tp_rank = 0,
                            int tp_size = 1);
  // Every tensor's offset, in the order backward finishes them.
  std::vector<int64_t> offsets() const;
};

template <class T>
struct LayerActivations {
  std::vector<T> input, ln1, ln1_mean, ln1_rstd, qkv, probs, attn, mid, ln2, ln2_mean, ln2_rstd, fc1, gelu;
  // C: model width; inner: this rank's attention width (heads × head_dim); hidden: its MLP width.
  void resize(int64_t B, int64_t S, int64_t C, int64_t inner, int64_t hidden, int64_t n_head);
};

// Backward scratch shared by all layers of a model.
template <class T>
struct LayerScratch {
  std::vector<T> d_mid, d_norm, d_attn, d_qkv, d_hidden, d_fc1, d_probs;
  void resize(int64_t B, int64_t S, int64_t C, int64_t inner, int64_t hidden, int64_t n_head);
};

// Buffers of the cached (sampling) path, sized for the largest chunk.
// The official attention scale is (dh^-1/4)², which differs from 1/√dh in the last bit of a double.
template <class T>
T attention_scale(int64_t head_dim) {
  const double q = std::pow(static_cast<double>(head_dim), -0.25);
  return static_cast<T>(q * q);
}
constexpr double kLayerNormEps = 1e-5;

template <class T>
struct DecodeScratch {
  std::vector<T> ln, mean, rstd, qkv, attn, mid, hidden;
  // The fused decode step's transposed inputs of the qkv/fc1, proj and fc2 linears ([K, Mp] each).
  std::vector<T> xt_in, xt_attn, xt_hidden;
  // The decode linears' weights in the small-batch kernel's tile layout, at the parameters' offsets
  // (MetaBlock::tile_decode_weights; float with the AVX2 kernel), or null: row-major from the parameters.
  const T* tiled = nullptr;
  const T* weights(const T* P) const { return tiled ? tiled : P; }
  cpu::SmallBatchWeights layout() const { return tiled ? cpu::SmallBatchWeights::kTiles : cpu::SmallBatchWeights::kRows; }
  void resize(int64_t rows, int64_t C);
};

template <class T>
struct TransformerLayer {
  LayerParams p;
  int64_t C = 0;            // model width (LayerNorms, residual stream)
  int64_t n_head = 0;       // heads on this rank
  int64_t head_dim = 0;
  int64_t hidden = 0;       // MLP hidden units on this rank
  Communicator* tp = nullptr;  // tensor-parallel group; nullptr: the whole layer is here
  int64_t inner() const { return n_head * head_dim; }

  // x, out: [B, S, C]; out may not alias x.
  void forward(const T* params, LayerActivations<T>& a, const T* x, T* out, int64_t B, int64_t S,
               const cpu::RopeTable<T>& rope) const;
  // dout: [B, S, C] gradient of out; dx: [B, S, C] written (may not alias dout).
  void backward(const T* params, T* grads, const LayerActivations<T>& a, LayerScratch<T>& s, const T* dout, T* dx,
                int64_t B, int64_t S, const cpu::RopeTable<T>& rope) const;
  // Sums a partial result of a row-parallel layer (or a column-parallel input gradient) over the TP group.
  void tp_sum(T* data, int64_t n) const {
    if (tp && tp->size() > 1) tp->all_reduce_sum(data, n);
  }
  // Sampling: n new positions per sample at absolute sequence positions start..start+n−1, attending to the
  // layer's KV cache (which receives their keys and values). x, out: [B, n, C]; out may not alias x.
  void forward_cached(const T* params, cpu::KVCache<T>& cache, DecodeScratch<T>& s, const T* x, T* out, int64_t B,
                      int64_t n, int64_t start, const cpu::RopeTable<T>& rope) const;
  // The part of forward_cached that fills the cache: LayerNorm, QKV, RoPE on k, keys and values stored;
  // for positions whose layer output nobody reads (the text prefix in a block's last layer).
  void store_kv(const T* params, cpu::KVCache<T>& cache, DecodeScratch<T>& s, const T* x, int64_t B, int64_t n,
                int64_t start, const cpu::RopeTable<T>& rope) const;
  // forward_cached's fused float path (transformer_layer_decode.cpp): the whole layer in one parallel
  // region of small-batch team ops, used when can_decode_team (no TP, ≤ kDecodeTeamRows rows, head_dim a
  // multiple of 8, AVX2 build). decode_team is the region's body, for callers that run more than one layer
  // (or a whole block step) in one region: every thread of the region calls it, after prepare_decode_team
  // sized the scratch outside the region. shared_rows > 0 says input rows [shared_rows, 2·shared_rows) equal
  // rows [0, shared_rows) (guidance's two halves at the first layer): their LayerNorm and QKV are copied.
  static constexpr int64_t kDecodeTeamRows = 64;
  // Writes this layer's four decode linear weights from P into dst (same offsets) in tile layout
  // (DecodeScratch::tiled). Float with the AVX2 kernel only.
  void tile_decode_weights(const T* P, T* dst) const;
  bool can_decode_team(int64_t rows) const;
  void prepare_decode_team(DecodeScratch<T>& s, int64_t rows) const;
  void decode_team(const T* params, cpu::KVCache<T>& cache, DecodeScratch<T>& s, const T* x, T* out, int64_t B,
                   int64_t n, int64_t start, const cpu::RopeTable<T>& rope, int64_t shared_rows) const;
  void forward_cached_team(const T* params, cpu::KVCache<T>& cache, DecodeScratch<T>& s, const T* x, T* out, int64_t B,
                           int64_t n, int64_t start, const cpu::RopeTable<T>& rope) const;
};

// The linear of the decode paths: for float the small-batch kernel (its portable form without AVX2), whose
// per-row results do not depend on how many rows a call holds or on the thread count; linear_forward for
// double.
// layout kTiles (float with the kernel only): weight is in tile layout.
template <class T>
void decode_linear(T* out, const T* in, const T* weight, const T* bias, int64_t M, int64_t K, int64_t N,
                   cpu::SmallBatchWeights layout = cpu::SmallBatchWeights::kRows);

// A second thread pays for a decode region above ~100k multiply-adds per layer (config A: 3M per sample row).
inline bool decode_team_parallel(int64_t rows, int64_t C) { return rows * C * C > (1 << 14); }

#ifdef STARFLOW_SMALL_BATCH_KERNEL
template <>
void TransformerLayer<float>::tile_decode_weights(const float* P, float* dst) const;
template <>
bool TransformerLayer<float>::can_decode_team(int64_t rows) const;
template <>
void TransformerLayer<float>::prepare_decode_team(DecodeScratch<float>& s, int64_t rows) const;
template <>
void TransformerLayer<float>::decode_team(const float* params, cpu::KVCache<float>& cache, DecodeScratch<float>& s,
                                          const float* x, float* out, int64_t B, int64_t n, int64_t start,
                                          const cpu::RopeTable<float>& rope, int64_t shared_rows) const;
template <>
void TransformerLayer<float>::forward_cached_team(const float* params, cpu::KVCache<float>& cache,
                                                  DecodeScratch<float>& s, const float* x, float* out, int64_t B,
                                                  int64_t n, int64_t start, const cpu::RopeTable<float>& rope) const;
#endif

}  // namespace starflow::core
