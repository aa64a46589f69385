// TransformerLayer forward/backward on the CPU ops.
#include "core/models/transformer_layer.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "core/ops/cpu/attention.h"
#include "core/ops/cpu/gelu.h"
#include "core/ops/cpu/layernorm.h"
#include "core/ops/cpu/linear.h"
#include "core/ops/cpu/linear_small_batch.h"

namespace starflow::core {

LayerParams LayerParams::add_to(ParameterLayout& layout, const std::string& prefix, int64_t C, int tp_rank,
                                int tp_size) {
  // Column-parallel: output rows split (QKV per q/k/v block, so each rank holds whole heads); row-parallel:
  // input columns split. Norms and the row-parallel biases are replicated.
  const TensorShard qkv{0, 3, tp_rank, tp_size}, column{0, 1, tp_rank, tp_size}, row{1, 1, tp_rank, tp_size};
  LayerParams p;
  p.ln1_w = layout.add(prefix + "attention.norm.weight", {C});
  p.ln1_b = layout.add(prefix + "attention.norm.bias", {C});
  p.qkv_w = layout.add(prefix + "attention.qkv.weight", {3 * C, C}, qkv);
  p.qkv_b = layout.add(prefix + "attention.qkv.bias", {3 * C}, qkv);
  p.proj_w = layout.add(prefix + "attention.proj.weight", {C, C}, row);
  p.proj_b = layout.add(prefix + "attention.proj.bias", {C});
  p.ln2_w = layout.add(prefix + "mlp.norm.weight", {C});
  p.ln2_b = layout.add(prefix + "mlp.norm.bias", {C});
  p.fc1_w = layout.add(prefix + "mlp.main.0.weight", {4 * C, C}, column);
  p.fc1_b = layout.add(prefix + "mlp.main.0.bias", {4 * C}, column);
  p.fc2_w = layout.add(prefix + "mlp.main.2.weight", {C, 4 * C}, row);
  p.fc2_b = layout.add(prefix + "mlp.main.2.bias", {C});
  return p;
}

std::vector<int64_t> LayerParams::offsets() const {
  return {fc2_w, fc2_b, fc1_w, fc1_b, ln2_w, ln2_b, proj_w, proj_b, qkv_w, qkv_b, ln1_w, ln1_b};
}

template <class T>
void LayerActivations<T>::resize(int64_t B, int64_t S, int64_t C, int64_t inner, int64_t hidden, int64_t n_head) {
  const size_t rows = static_cast<size_t>(B * S), bsc = rows * C;
  for (auto* v : {&input, &ln1, &mid, &ln2}) v->resize(bsc);
  for (auto* v : {&ln1_mean, &ln1_rstd, &ln2_mean, &ln2_rstd}) v->resize(rows);
  attn.resize(rows * inner);
  qkv.resize(3 * rows * inner);
  probs.resize(static_cast<size_t>(B * n_head * S * S));
  fc1.resize(rows * hidden);
  gelu.resize(rows * hidden);
}

template <class T>
void LayerScratch<T>::resize(int64_t B, int64_t S, int64_t C, int64_t inner, int64_t hidden, int64_t n_head) {
  const size_t rows = static_cast<size_t>(B * S), bsc = rows * C;
  for (auto* v : {&d_mid, &d_norm}) if (v->size() < bsc) v->resize(bsc);
  if (d_attn.size() < rows * inner) d_attn.resize(rows * inner);
  if (d_qkv.size() < 3 * rows * inner) d_qkv.resize(3 * rows * inner);
  if (d_hidden.size() < rows * hidden) d_hidden.resize(rows * hidden);
  if (d_fc1.size() < rows * hidden) d_fc1.resize(rows * hidden);
  const size_t probs = static_cast<size_t>(B * n_head * S * S);
  if (d_probs.size() < probs) d_probs.resize(probs);
}

template <class T>
void DecodeScratch<T>::resize(int64_t rows, int64_t C) {
  const size_t rc = static_cast<size_t>(rows * C);
  if (ln.size() < rc) {
    for (auto* v : {&ln, &attn, &mid}) v->resize(rc);
    mean.resize(rows);
    rstd.resize(rows);
    qkv.resize(3 * rc);
    hidden.resize(8 * rc);  // fc1 output and GELU output side by side
  }
}

namespace {
// Residual add of a row-parallel layer's output: out = partial summed over the TP group + bias + residual.
// Without TP the bias is already in (linear_forward added it).
template <class T>
void finish_row_parallel(const TransformerLayer<T>& layer, T* out, const T* bias, const T* residual, int64_t rows) {
  const int64_t C = layer.C;
  if (layer.tp && layer.tp->size() > 1) {
    layer.tp_sum(out, rows * C);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < C; ++c) out[r * C + c] = (out[r * C + c] + bias[c]) + residual[r * C + c];
  } else {
    for (int64_t i = 0; i < rows * C; ++i) out[i] += residual[i];
  }
}
}  // namespace

template <class T>
void TransformerLayer<T>::forward(const T* P, LayerActivations<T>& a, const T* x, T* out, int64_t B, int64_t S,
                                  const cpu::RopeTable<T>& rope) const {
  const int64_t rows = B * S, n = rows * C, I = inner();
  const bool split = tp && tp->size() > 1;
  a.resize(B, S, C, I, hidden, n_head);
  if (x != a.input.data()) std::memcpy(a.input.data(), x, sizeof(T) * n);  // the block writes it in place
  cpu::layernorm_forward(a.ln1.data(), a.ln1_mean.data(), a.ln1_rstd.data(), x, P + p.ln1_w, P + p.ln1_b, rows, C,
                         T(kLayerNormEps));
  cpu::linear_forward(a.qkv.data(), a.ln1.data(), P + p.qkv_w, P + p.qkv_b, rows, C, 3 * I);
  cpu::rope_rotate(a.qkv.data(), B, S, S * 3 * I, 3 * I, 2 * n_head, rope, 0, false);
  cpu::attention_forward(a.attn.data(), a.probs.data(), a.qkv.data(), B, S, n_head, head_dim,
                         attention_scale<T>(head_dim));
  cpu::linear_forward(a.mid.data(), a.attn.data(), P + p.proj_w, split ? nullptr : P + p.proj_b, rows, I, C);
  finish_row_parallel(*this, a.mid.data(), P + p.proj_b, x, rows);
  cpu::layernorm_forward(a.ln2.data(), a.ln2_mean.data(), a.ln2_rstd.data(), a.mid.data(), P + p.ln2_w,
                         P + p.ln2_b, rows, C, T(kLayerNormEps));
  cpu::linear_forward(a.fc1.data(), a.ln2.data(), P + p.fc1_w, P + p.fc1_b, rows, C, hidden);
  cpu::gelu_forward(a.gelu.data(), a.fc1.data(), rows * hidden);
  cpu::linear_forward(out, a.gelu.data(), P + p.fc2_w, split ? nullptr : P + p.fc2_b, rows, hidden, C);
  finish_row_parallel(*this, out, P + p.fc2_b, a.mid.data(), rows);
}

template <class T>
void TransformerLayer<T>::backward(const T* P, T* G, const LayerActivations<T>& a, LayerScratch<T>& s,
                                   const T* dout, T* dx, int64_t B, int64_t S,
                                   const cpu::RopeTable<T>& rope) const {
  const int64_t rows = B * S, n = rows * C, I = inner();
  s.resize(B, S, C, I, hidden, n_head);
  // G == nullptr: input gradient only (score-based denoising); the ops skip null parameter gradients.
  auto grad = [G](int64_t offset) { return G ? G + offset : nullptr; };
  // MLP branch: out = mid + fc2(gelu(fc1(LN2(mid)))). Under TP, dout is whole on every rank (the forward
  // all-reduce's conjugate is the identity), and LN2's input gradient is a sum over the ranks' hidden units.
  std::memcpy(s.d_mid.data(), dout, sizeof(T) * n);
  cpu::linear_backward(s.d_hidden.data(), grad(p.fc2_w), grad(p.fc2_b), dout, a.gelu.data(), P + p.fc2_w, rows, hidden, C);
  cpu::gelu_backward(s.d_fc1.data(), s.d_hidden.data(), a.fc1.data(), rows * hidden);
  cpu::linear_backward(s.d_norm.data(), grad(p.fc1_w), grad(p.fc1_b), s.d_fc1.data(), a.ln2.data(), P + p.fc1_w, rows, C,
                       hidden);
  tp_sum(s.d_norm.data(), n);
  cpu::layernorm_backward(s.d_mid.data(), grad(p.ln2_w), grad(p.ln2_b), s.d_norm.data(), a.mid.data(),
                          a.ln2_mean.data(), a.ln2_rstd.data(), P + p.ln2_w, rows, C, /*accumulate_din=*/true);
  // Attention branch: mid = x + proj(attn(rope(qkv(LN1(x))))).
  std::memcpy(dx, s.d_mid.data(), sizeof(T) * n);
  cpu::linear_backward(s.d_attn.data(), grad(p.proj_w), grad(p.proj_b), s.d_mid.data(), a.attn.data(), P + p.proj_w,
                       rows, I, C);
  cpu::attention_backward(s.d_qkv.data(), s.d_probs.data(), s.d_attn.data(), a.qkv.data(), a.probs.data(), B, S,
                          n_head, head_dim, attention_scale<T>(head_dim));
  cpu::rope_rotate(s.d_qkv.data(), B, S, S * 3 * I, 3 * I, 2 * n_head, rope, 0, /*inverse=*/true);
  cpu::linear_backward(s.d_norm.data(), grad(p.qkv_w), grad(p.qkv_b), s.d_qkv.data(), a.ln1.data(), P + p.qkv_w, rows, C,
                       3 * I);
  tp_sum(s.d_norm.data(), n);
  cpu::layernorm_backward(dx, grad(p.ln1_w), grad(p.ln1_b), s.d_norm.data(), a.input.data(), a.ln1_mean.data(),
                          a.ln1_rstd.data(), P + p.ln1_w, rows, C, /*accumulate_din=*/true);
}

template <class T>
void TransformerLayer<T>::forward_cached(const T* P, cpu::KVCache<T>& cache, DecodeScratch<T>& s, const T* x, T* out,
                                         int64_t B, int64_t n, int64_t start, const cpu::RopeTable<T>& rope) const {
  const int64_t rows = B * n, I = inner();
  const bool split = tp && tp->size() > 1;
#ifdef STARFLOW_SMALL_BATCH_KERNEL
  if constexpr (std::is_same_v<T, float>) {
    if (can_decode_team(rows)) return forward_cached_team(P, cache, s, x, out, B, n, start, rope);
  }
#endif
  s.resize(rows, C);  // sized for the whole layer; a TP rank uses the first 1/p of the wide buffers
  const T* W = s.weights(P);
  const cpu::SmallBatchWeights layout = s.layout();
  T* fc1 = s.hidden.data();
  T* act = s.hidden.data() + rows * hidden;
  cpu::layernorm_forward(s.ln.data(), s.mean.data(), s.rstd.data(), x, P + p.ln1_w, P + p.ln1_b, rows, C,
                         T(kLayerNormEps));
  decode_linear(s.qkv.data(), s.ln.data(), W + p.qkv_w, P + p.qkv_b, rows, C, 3 * I, layout);
  cpu::rope_rotate(s.qkv.data(), B, n, n * 3 * I, 3 * I, 2 * n_head, rope, start, false);
  cpu::attention_cached_forward(s.attn.data(), cache, s.qkv.data(), B, n, start, attention_scale<T>(head_dim));
  decode_linear(s.mid.data(), s.attn.data(), W + p.proj_w, split ? nullptr : P + p.proj_b, rows, I, C, layout);
  finish_row_parallel(*this, s.mid.data(), P + p.proj_b, x, rows);
  cpu::layernorm_forward(s.ln.data(), s.mean.data(), s.rstd.data(), s.mid.data(), P + p.ln2_w, P + p.ln2_b, rows, C,
                         T(kLayerNormEps));
  decode_linear(fc1, s.ln.data(), W + p.fc1_w, P + p.fc1_b, rows, C, hidden, layout);
  cpu::gelu_forward(act, fc1, rows * hidden);
  decode_linear(out, act, W + p.fc2_w, split ? nullptr : P + p.fc2_b, rows, hidden, C, layout);
  finish_row_parallel(*this, out, P + p.fc2_b, s.mid.data(), rows);
}

template <class T>
void decode_linear(T* out, const T* in, const T* weight, const T* bias, int64_t M, int64_t K, int64_t N,
                   cpu::SmallBatchWeights layout) {
  if constexpr (std::is_same_v<T, float>) {
    // Unlike BLAS (whose sums change with its thread count), the small-batch kernel gives a row the same
    // bits in any call, whatever the row count (it blocks many rows like a GEMM) or the threads; so does
    // its portable form in builds without AVX2.
    return cpu::linear_forward_small_batch(out, in, weight, bias, M, K, N, layout);
  }
  if (layout != cpu::SmallBatchWeights::kRows) throw std::logic_error("tiled decode weights need the float kernel");
  cpu::linear_forward(out, in, weight, bias, M, K, N);
}

template <class T>
void TransformerLayer<T>::store_kv(const T* P, cpu::KVCache<T>& cache, DecodeScratch<T>& s, const T* x, int64_t B,
                                   int64_t n, int64_t start, const cpu::RopeTable<T>& rope) const {
  const int64_t rows = B * n, I = inner();
  s.resize(rows, C);
  const T* W = s.weights(P);
  const cpu::SmallBatchWeights layout = s.layout();
  cpu::layernorm_forward(s.ln.data(), s.mean.data(), s.rstd.data(), x, P + p.ln1_w, P + p.ln1_b, rows, C,
                         T(kLayerNormEps));
  decode_linear(s.qkv.data(), s.ln.data(), W + p.qkv_w, P + p.qkv_b, rows, C, 3 * I, layout);
  cpu::rope_rotate(s.qkv.data() + I, B, n, n * 3 * I, 3 * I, n_head, rope, start, false);  // k only
  cpu::attention_cached_store(cache, s.qkv.data(), B, n, start);
}

template void decode_linear<float>(float*, const float*, const float*, const float*, int64_t, int64_t, int64_t,
                                   cpu::SmallBatchWeights);
template void decode_linear<double>(double*, const double*, const double*, const double*, int64_t, int64_t, int64_t,
                                    cpu::SmallBatchWeights);
template struct DecodeScratch<float>;
template struct DecodeScratch<double>;
template struct LayerActivations<float>;
template struct LayerActivations<double>;
template struct LayerScratch<float>;
template struct LayerScratch<double>;
template struct TransformerLayer<float>;
template struct TransformerLayer<double>;

}  // namespace starflow::core
