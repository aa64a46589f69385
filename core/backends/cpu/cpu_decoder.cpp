// The CPU backend's decode hooks (cpu_decoder.h). The fused step replaces a fork/join per op, with the small
// ops serial in between, by one parallel region per token step whose work-sharing steps are separated only by
// the barriers the data flow needs: token-by-token decoding calls a layer 512 times per image batch on config
// A with ~12M multiply-adds each, so the per-op overheads were a third of the time. Every intermediate that
// feeds a linear is written transposed ([K, Mp], the small-batch kernel's input): the LayerNorms write it
// directly, attention writes its output that way, and fc1 writes GELU of its output that way, so fc2 reads it
// without a transpose (SwiGLU's gated activation is transposed after its two projections). Results do not depend on the thread count (each element is computed by one thread, in
// a fixed order).
#include "core/backends/cpu/cpu_decoder.h"

#include <omp.h>

#include <algorithm>
#include <limits>
#include <string_view>
#include <type_traits>
#include <unordered_map>

#include "core/backends/cpu/cpu_backend.h"
#include "core/models/sampler.h"
#include "core/models/starflow_model.h"
#include "core/ops/cpu/gated_activation.h"
#include "core/ops/cpu/normalize_transposed.h"
#include "core/ops/cpu/rmsnorm.h"

namespace starflow::core {
namespace {

template <class T>
using Block = MetaBlock<CpuBackend<T>>;
template <class T>
using Layer = TransformerLayer<CpuBackend<T>>;

#ifdef STARFLOW_SMALL_BATCH_KERNEL
// Writes a layer's decode linear weights from P into dst (same offsets) in `layout`, with the shapes the
// decode linears run them with (this rank's part under TP).
void tile_layer(const Layer<float>& l, const float* P, float* dst, cpu::SmallBatchWeights layout) {
  for (const auto& linear : l.decode_linears())
    cpu::tile_small_batch_weight(dst + linear.weight, P + linear.weight, linear.in, linear.out, layout);
}

void tile_block(const Block<float>& block, const float* P, float* dst, cpu::SmallBatchWeights layout) {
  if (block.identity()) return;  // no parameters
  const BlockParams& p = block.params();
  cpu::tile_small_batch_weight(dst + p.proj_in_w, P + p.proj_in_w, p.D, p.C, layout);
  cpu::tile_small_batch_weight(dst + p.proj_out_w, P + p.proj_out_w, p.C, 2 * p.D, layout);
  if (block.conditioned()) cpu::tile_small_batch_weight(dst + p.proj_txt_w, P + p.proj_txt_w, p.E, p.C, layout);
  for (const auto& layer : block.layers()) tile_layer(layer, P, dst, layout);
}

// The fused step computes every layer the official switches give: LayerNorm, RMSNorm or no pre-norms, with or
// without biases, GELU or SwiGLU MLP, QK-norm, post-norms, grouped-query attention, either RoPE pair layout.
// Tensor-parallel layers run op by op.
bool layer_can_decode_team(const Layer<float>& l, int64_t rows) {
  return !l.tensor_parallel() && rows <= cpu_decode::kTeamRows && l.head_dim % 8 == 0;
}

bool block_decodes_as_team(const Block<float>& block, int64_t rows) {
  if (block.identity()) return false;
  for (const auto& layer : block.layers())
    if (!layer_can_decode_team(layer, rows)) return false;
  return true;
}

void prepare_layer_team(const Layer<float>& l, DecodeState<CpuBackend<float>>& st, int64_t rows) {
  const int64_t Mp = cpu::small_batch_padded_rows(rows);
  st.scratch.resize(l, rows);
  auto& f = st.fast;
  CpuBackend<float>::grow(f.xt_in, l.C * Mp);
  CpuBackend<float>::grow(f.xt_attn, l.inner() * Mp);
  CpuBackend<float>::grow(f.xt_hidden, l.hidden * Mp);
}

const float* optional_param(const float* P, int64_t offset) { return offset >= 0 ? P + offset : nullptr; }

// The pre-norm of x written transposed into xt (the next linear's input), the same values as norm_forward's.
void pre_norm_team(const Layer<float>& l, const NormParams& n, const float* P, DecodeScratch<CpuBackend<float>>& s,
                   float* xt, const float* x, int64_t rows) {
  switch (l.opt.norm) {
    case NormType::kLayerNorm:
      cpu::layernorm_transposed_team(xt, s.mean.data(), s.rstd.data(), x, P + n.weight, P + n.bias, rows, l.C,
                                     float(kLayerNormEps));
      return;
    case NormType::kRmsNorm:
      cpu::rmsnorm_transposed_team(xt, s.rstd.data(), x, P + n.weight, rows, l.C, float(kRmsNormEps));
      return;
    case NormType::kNone: cpu::small_batch_transpose_team(xt, x, rows, l.C); return;
  }
}

// The row-wise steps below give each row to one thread and run the op-by-op path's kernels on it (a row's
// values do not depend on how many rows a call holds), so both paths agree; the worksharing loops end in the
// barrier the next step needs.

// QK-norm: each q and k head of the rows RMS-normalised in place, before RoPE.
void qk_norm_team(const Layer<float>& l, const float* P, float* qkv, float* rrms, int64_t rows) {
  const int64_t width = l.qkv_width(), heads = l.n_head + l.n_kv_head;
#pragma omp for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* q = qkv + r * width;
    float* k = q + l.inner();
    cpu::rmsnorm_forward(q, rrms + r * heads, q, P + l.q_norm, l.n_head, l.head_dim, float(kRmsNormEps));
    cpu::rmsnorm_forward(k, rrms + r * heads + l.n_head, k, P + l.k_norm, l.n_kv_head, l.head_dim,
                         float(kRmsNormEps));
  }
}

// out = residual + RMSNorm(branch) (a post-norm before its residual add).
void post_norm_add_team(const float* gain, float* out, float* rrms, const float* branch, const float* residual,
                        int64_t rows, int64_t C) {
#pragma omp for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* y = out + r * C;
    cpu::rmsnorm_forward(y, rrms + r, branch + r * C, gain, 1, C, float(kRmsNormEps));
    const float* res = residual + r * C;
    for (int64_t j = 0; j < C; ++j) y[j] += res[j];
  }
}

// SwiGLU's activation gelu_tanh(gate) ⊙ up, row by row into gate, then transposed into xt (fc2's input).
void swiglu_team(float* xt, float* gate, const float* up, int64_t rows, int64_t hidden) {
#pragma omp for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    cpu::gated_activation_forward(gate + r * hidden, gate + r * hidden, up + r * hidden, hidden,
                                  Activation::kGeluTanh);
  cpu::small_batch_transpose_team(xt, gate, rows, hidden);
}

// One layer of the fused step: the region's body, called by every thread of the region. shared_rows > 0 says
// input rows [shared_rows, 2·shared_rows) equal rows [0, shared_rows) (guidance's two halves at the first
// layer): their pre-norm, QKV and QK-norm are copied.
void layer_team(const Layer<float>& l, const float* P, const float* W, cpu::SmallBatchWeights layout,
                cpu::KVCache<float>& cache,
                DecodeState<CpuBackend<float>>& st, const float* x, float* out, int64_t B, int64_t n, int64_t start,
                const cpu::RopeTable<float>& rope, int64_t shared_rows) {
  const LayerOptions& o = l.opt;
  const int64_t rows = B * n, I = l.inner(), C = l.C, H = l.hidden, width = l.qkv_width();
  const int64_t qkv_rows = shared_rows > 0 ? shared_rows : rows;
  auto& s = st.scratch;
  float* qkv = s.qkv.data();
  float* mid = s.mid.data();
  float* branch = s.branch.data();
  float* gate = s.hidden.data();
  float* up = s.hidden.data() + rows * H;
  float* xt_in = st.fast.xt_in.data();
  float* xt_attn = st.fast.xt_attn.data();
  float* xt_hidden = st.fast.xt_hidden.data();
  const float scale = float(attention_scale(l.head_dim) / st.attention_temperature);
  // SwiGLU's gate and up projections are written row-major, for the activation to pair them.
  cpu::SmallBatchOutput to_qkv, to_hidden, to_gate, to_up;
  to_qkv.out = qkv;
  to_hidden.out_t = xt_hidden;
  to_hidden.gelu = true;
  to_gate.out = gate;
  to_up.out = up;
  // dest = residual + the row-parallel linear's output: added in its epilogue, or through the post-norm
  // (the linear then writes `branch`).
  auto add_branch = [&](float* dest, const float* residual, const float* xt, int64_t K, int64_t weight, int64_t bias,
                        int64_t post_gain) {
    cpu::SmallBatchOutput to;
    to.out = o.post_norm ? branch : dest;
    to.residual = o.post_norm ? nullptr : residual;
    cpu::small_batch_linear_team(to, xt, rows, W + weight, optional_param(P, bias), K, C, layout);
    if (o.post_norm) post_norm_add_team(P + post_gain, dest, s.post_rrms.data(), branch, residual, rows, C);
  };
  pre_norm_team(l, l.ln1, P, s, xt_in, x, qkv_rows);
  cpu::small_batch_linear_team(to_qkv, xt_in, qkv_rows, W + l.qkv.weight, optional_param(P, l.qkv.bias), C, width,
                               layout);
  if (o.qk_norm) qk_norm_team(l, P, qkv, s.qk_rrms.data(), qkv_rows);
  if (shared_rows > 0) {  // the second half's input rows equal the first's: so do their q, k and v
#pragma omp for schedule(static)
    for (int64_t r = 0; r < shared_rows; ++r)
      std::copy(qkv + r * width, qkv + (r + 1) * width, qkv + (shared_rows + r) * width);
  }
  cpu::attention_cached_team(xt_attn, cache, qkv, B, n, start, scale, rope, l.n_head);
  add_branch(mid, x, xt_attn, I, l.proj.weight, l.proj.bias, l.post_attn);
  pre_norm_team(l, l.ln2, P, s, xt_in, mid, rows);
  if (o.swiglu) {
    cpu::small_batch_linear_team(to_gate, xt_in, rows, W + l.fc1.weight, optional_param(P, l.fc1.bias), C, H, layout);
    cpu::small_batch_linear_team(to_up, xt_in, rows, W + l.up.weight, optional_param(P, l.up.bias), C, H, layout);
    swiglu_team(xt_hidden, gate, up, rows, H);
  } else {
    cpu::small_batch_linear_team(to_hidden, xt_in, rows, W + l.fc1.weight, optional_param(P, l.fc1.bias), C, H,
                                 layout);
  }
  add_branch(out, mid, xt_hidden, H, l.fc2.weight, l.fc2.bias, l.post_mlp);
}

// A whole chunk (embedding, the layers, the final norm, proj_out and the head) in one parallel region.
void block_team(const Block<float>& block, const float* P, DecodeState<CpuBackend<float>>& st, const float* inp,
                int64_t start, int64_t n, float* sigma, float* mu, const cpu::RopeTable<float>& rope) {
  const BlockParams& p = block.params();
  const int64_t B = st.batch, rows = B * n, Mp = cpu::small_batch_padded_rows(rows), C = p.C, D = p.D;
  const auto& layers = block.layers();
  for (const auto& layer : layers) prepare_layer_team(layer, st, rows);
  for (auto* v : {&st.seq_a, &st.seq_b}) CpuBackend<float>::grow(*v, rows * C);
  CpuBackend<float>::resize(st.o, rows * 2 * D);
  CpuBackend<float>::resize(st.rrms, rows);
  CpuBackend<float>::grow(st.fast.xt_io, std::max(C, D) * Mp);
  float* xt = st.fast.xt_io.data();
  const float* W = st.weights.data;
  const cpu::SmallBatchWeights layout = st.weights.layout;
  cpu::SmallBatchOutput to_emb, to_o;
  to_emb.out = st.seq_a.data();
  to_o.out = st.o.data();
#pragma omp parallel if (cpu_decode::team_parallel(rows, C))
  {
    cpu::small_batch_transpose_team(xt, inp, rows, D);
    cpu::small_batch_linear_team(to_emb, xt, rows, W + p.proj_in_w, P + p.proj_in_b, D, C, layout);
    float *x = st.seq_a.data(), *y = st.seq_b.data();
    const int64_t shared = st.paired_halves && B % 2 == 0 ? rows / 2 : 0;
    for (size_t l = 0; l < layers.size(); ++l) {
      layer_team(layers[l], P, W, layout, st.caches[l], st, x, y, B, n, p.L + start, rope, l == 0 ? shared : 0);
      std::swap(x, y);
    }
    if (block.final_norm()) cpu::rmsnorm_transposed_team(xt, st.rrms.data(), x, P + p.final_norm_w, rows, C, 1e-6f);
    else cpu::small_batch_transpose_team(xt, x, rows, C);
    cpu::small_batch_linear_team(to_o, xt, rows, W + p.proj_out_w, P + p.proj_out_b, C, 2 * D, layout);
#pragma omp single
    cpu::flow_head_sigma_mu(sigma, mu, st.o.data(), rows, D, block.head());
  }
}
#endif

}  // namespace

template <class T>
typename CpuBackend<T>::DecodeWeights CpuBackend<T>::decode_weights(const FlowModel<CpuBackend>& model,
                                                                    int64_t k) const {
  const T* P = model.parameters().data();
#ifdef STARFLOW_SMALL_BATCH_KERNEL
  if constexpr (std::is_same_v<T, float>) {
    // Tiling a block costs about what decoding two of its tokens does: kept between sampling calls.
    cpu_decode::TiledWeights& t = *tiled_;
    const std::lock_guard<std::mutex> lock(t.mutex);
    const size_t total = model.parameters().size();
    const cpu::SmallBatchWeights layout = cpu::decode_tile_layout();
    if (t.data.size() != total || t.layout != layout) {
      t.data.assign(total, 0.0f);
      t.version.assign(static_cast<size_t>(model.config().num_blocks), std::numeric_limits<uint64_t>::max());
      t.layout = layout;
    }
    if (t.version[k] != model.parameters_version()) {
      tile_block(model.block(k), P, t.data.data(), layout);
      t.version[k] = model.parameters_version();
    }
    return {t.data.data(), layout};
  }
#endif
  return {P, cpu::SmallBatchWeights::kRows};
}

template <class T>
bool CpuBackend<T>::begin_decode(const MetaBlock<CpuBackend>& block, const T* P, DecodeState<CpuBackend>& st,
                                 const T* y, int64_t B, const RopeTable& rope) const {
  const BlockParams& p = block.params();
  const int64_t L = p.L, E = p.E, C = p.C, text = L * E;
  // Samples with the same condition (a class repeated over a grid, guidance's null caption in every row)
  // have the same prefix: it is computed once, for the first of them, and copied.
  std::vector<int64_t> source(B), distinct;
  std::unordered_map<std::string_view, int64_t> first;
  for (int64_t b = 0; b < B; ++b) {
    const std::string_view bytes(reinterpret_cast<const char*>(y + b * text), sizeof(T) * text);
    const auto [it, fresh] = first.emplace(bytes, b);
    source[b] = it->second;
    if (fresh) distinct.push_back(b);
  }
  const int64_t n_distinct = static_cast<int64_t>(distinct.size());
  const T* y_distinct = y;
  auto& f = st.fast;
  if (n_distinct < B) {
    f.prefix_y.resize(n_distinct * text);
    for (int64_t i = 0; i < n_distinct; ++i)
      std::copy_n(y + distinct[i] * text, text, f.prefix_y.data() + i * text);
    y_distinct = f.prefix_y.data();
  }
  // The prefix runs in groups of a fixed number of samples (as many as the fused step takes), each into small
  // caches whose rows are then copied: every sample's keys and values come out of the same kernels whatever
  // the batch size, so samples do not depend on the batch or on its split between threads.
  const auto& layers = block.layers();
  const int64_t H = layers[0].n_kv_head, dh = layers[0].head_dim, cap = L + p.T;
  const int64_t group = std::max<int64_t>(1, cpu_decode::kTeamRows / L);
  auto copy_prefix = [&](const KVCache& from_cache, int64_t from_sample, KVCache& to_cache, int64_t to_sample) {
    const int64_t from_cap = from_cache.capacity;
    for (int64_t h = 0; h < H; ++h) {
      const size_t from = static_cast<size_t>((from_sample * H + h) * from_cap * dh);
      const size_t to = static_cast<size_t>((to_sample * H + h) * cap * dh);
      std::copy_n(from_cache.k.data() + from, L * dh, to_cache.k.data() + to);
      std::copy_n(from_cache.v.data() + from, L * dh, to_cache.v.data() + to);
    }
  };
  f.prefix_caches.resize(layers.size());
  resize(st.seq_a, std::min(group, n_distinct) * L * C);
  for (int64_t i0 = 0; i0 < n_distinct; i0 += group) {
    const int64_t nb = std::min(group, n_distinct - i0);
    for (auto& c : f.prefix_caches) c.reset(nb, H, dh, L);
    decode_linear(st.seq_a.data(), y_distinct + i0 * text, st.weights.data + p.proj_txt_w, P + p.proj_txt_b, nb * L,
                  E, C, st.weights.layout);
    // The text's outputs are never read, only its keys and values: the last layer stops at storing them.
    block.run_cached_layers(P, st, f.prefix_caches, nb, L, 0, rope, /*outputs=*/false);
    for (size_t l = 0; l < layers.size(); ++l)
      for (int64_t i = 0; i < nb; ++i) copy_prefix(f.prefix_caches[l], i, st.caches[l], distinct[i0 + i]);
  }
  for (int64_t b = 0; b < B; ++b)
    if (source[b] != b)
      for (size_t l = 0; l < layers.size(); ++l) copy_prefix(st.caches[l], source[b], st.caches[l], b);
  return true;
}

template <class T>
bool CpuBackend<T>::decode_chunk(const MetaBlock<CpuBackend>& block, const T* P, DecodeState<CpuBackend>& st,
                                 const T* inp, int64_t start, int64_t n, T* sigma, T* mu, const RopeTable& rope) const {
#ifdef STARFLOW_SMALL_BATCH_KERNEL
  if constexpr (std::is_same_v<T, float>) {
    if (!block_decodes_as_team(block, st.batch * n)) return false;
    block_team(block, P, st, inp, start, n, sigma, mu, rope);
    return true;
  }
#endif
  return false;
}

template <class T>
int64_t CpuBackend<T>::samples_per_thread_group(const MetaBlock<CpuBackend>& block, const SampleOptions& opt,
                                                int64_t B, int64_t rows_per_sample) const {
  // Sequential decoding treats every sample on its own, so groups of whole samples can run on separate threads
  // without any synchronisation for a whole block, each through the fused step as a team of one: no barriers
  // (a token step of the team's row split has ~20, and any stall of one core idles the other at the next).
  // With fewer groups than threads the team's row split of every linear is used instead, as it is for Jacobi
  // decoding, whose stopping rule spans the batch.
#ifdef STARFLOW_SMALL_BATCH_KERNEL
  if constexpr (std::is_same_v<T, float>) {
    const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    int64_t per_group = std::max<int64_t>(1, cpu_decode::kGroupRows / rows_per_sample);
    if ((B + per_group - 1) / per_group < threads && cpu::decode_tile_layout() == cpu::SmallBatchWeights::kLaneTiles)
      per_group = std::max<int64_t>(1, cpu_decode::kLaneGroupRows / rows_per_sample);
    if (opt.jacobi || threads < 2 || (B + per_group - 1) / per_group < threads) return 0;
    return block_decodes_as_team(block, per_group * rows_per_sample) ? per_group : 0;
  }
#endif
  return 0;
}

#define STARFLOW_INSTANTIATE(T)                                                                                 \
  template CpuBackend<T>::DecodeWeights CpuBackend<T>::decode_weights(const FlowModel<CpuBackend<T>>&, int64_t)  \
      const;                                                                                                     \
  template bool CpuBackend<T>::begin_decode(const MetaBlock<CpuBackend<T>>&, const T*, DecodeState<CpuBackend<T>>&, \
                                            const T*, int64_t, const RopeTable&) const;                          \
  template bool CpuBackend<T>::decode_chunk(const MetaBlock<CpuBackend<T>>&, const T*, DecodeState<CpuBackend<T>>&, \
                                            const T*, int64_t, int64_t, T*, T*, const RopeTable&) const;         \
  template int64_t CpuBackend<T>::samples_per_thread_group(const MetaBlock<CpuBackend<T>>&, const SampleOptions&, \
                                                           int64_t, int64_t) const;
STARFLOW_INSTANTIATE(float)
STARFLOW_INSTANTIATE(double)
#undef STARFLOW_INSTANTIATE

}  // namespace starflow::core
