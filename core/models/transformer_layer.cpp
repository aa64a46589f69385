// TransformerLayer forward/backward on the CPU ops.
#include "core/models/transformer_layer.h"

#include <cmath>
#include <cstring>

#include "core/ops/cpu/attention.h"
#include "core/ops/cpu/gelu.h"
#include "core/ops/cpu/layernorm.h"
#include "core/ops/cpu/linear.h"

namespace starflow::core {

LayerParams LayerParams::add_to(ParameterLayout& layout, const std::string& prefix, int64_t C) {
  LayerParams p;
  p.ln1_w = layout.add(prefix + "attention.norm.weight", {C});
  p.ln1_b = layout.add(prefix + "attention.norm.bias", {C});
  p.qkv_w = layout.add(prefix + "attention.qkv.weight", {3 * C, C});
  p.qkv_b = layout.add(prefix + "attention.qkv.bias", {3 * C});
  p.proj_w = layout.add(prefix + "attention.proj.weight", {C, C});
  p.proj_b = layout.add(prefix + "attention.proj.bias", {C});
  p.ln2_w = layout.add(prefix + "mlp.norm.weight", {C});
  p.ln2_b = layout.add(prefix + "mlp.norm.bias", {C});
  p.fc1_w = layout.add(prefix + "mlp.main.0.weight", {4 * C, C});
  p.fc1_b = layout.add(prefix + "mlp.main.0.bias", {4 * C});
  p.fc2_w = layout.add(prefix + "mlp.main.2.weight", {C, 4 * C});
  p.fc2_b = layout.add(prefix + "mlp.main.2.bias", {C});
  return p;
}

template <class T>
void LayerActivations<T>::resize(int64_t B, int64_t S, int64_t C, int64_t n_head) {
  const size_t rows = static_cast<size_t>(B * S), bsc = rows * C;
  for (auto* v : {&input, &ln1, &attn, &mid, &ln2}) v->resize(bsc);
  for (auto* v : {&ln1_mean, &ln1_rstd, &ln2_mean, &ln2_rstd}) v->resize(rows);
  qkv.resize(3 * bsc);
  probs.resize(static_cast<size_t>(B * n_head * S * S));
  fc1.resize(4 * bsc);
  gelu.resize(4 * bsc);
}

template <class T>
void LayerScratch<T>::resize(int64_t B, int64_t S, int64_t C, int64_t n_head) {
  const size_t bsc = static_cast<size_t>(B * S * C);
  for (auto* v : {&d_mid, &d_norm, &d_attn}) if (v->size() < bsc) v->resize(bsc);
  if (d_qkv.size() < 3 * bsc) d_qkv.resize(3 * bsc);
  if (d_hidden.size() < 4 * bsc) d_hidden.resize(4 * bsc);
  if (d_fc1.size() < 4 * bsc) d_fc1.resize(4 * bsc);
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
// The official scale is (dh^-1/4)², which differs from 1/√dh in the last bit of a double.
template <class T>
T attention_scale(int64_t head_dim) {
  const double q = std::pow(static_cast<double>(head_dim), -0.25);
  return static_cast<T>(q * q);
}
constexpr double kLayerNormEps = 1e-5;
}  // namespace

template <class T>
void TransformerLayer<T>::forward(const T* P, LayerActivations<T>& a, const T* x, T* out, int64_t B, int64_t S,
                                  const cpu::RopeTable<T>& rope) const {
  const int64_t rows = B * S, n = rows * C;
  a.resize(B, S, C, n_head);
  if (x != a.input.data()) std::memcpy(a.input.data(), x, sizeof(T) * n);  // the block writes it in place
  cpu::layernorm_forward(a.ln1.data(), a.ln1_mean.data(), a.ln1_rstd.data(), x, P + p.ln1_w, P + p.ln1_b, rows, C,
                         T(kLayerNormEps));
  cpu::linear_forward(a.qkv.data(), a.ln1.data(), P + p.qkv_w, P + p.qkv_b, rows, C, 3 * C);
  cpu::rope_rotate(a.qkv.data(), B, S, S * 3 * C, 3 * C, 2 * n_head, rope, 0, false);
  cpu::attention_forward(a.attn.data(), a.probs.data(), a.qkv.data(), B, S, n_head, head_dim,
                         attention_scale<T>(head_dim));
  cpu::linear_forward(a.mid.data(), a.attn.data(), P + p.proj_w, P + p.proj_b, rows, C, C);
  for (int64_t i = 0; i < n; ++i) a.mid[i] += x[i];
  cpu::layernorm_forward(a.ln2.data(), a.ln2_mean.data(), a.ln2_rstd.data(), a.mid.data(), P + p.ln2_w,
                         P + p.ln2_b, rows, C, T(kLayerNormEps));
  cpu::linear_forward(a.fc1.data(), a.ln2.data(), P + p.fc1_w, P + p.fc1_b, rows, C, 4 * C);
  cpu::gelu_forward(a.gelu.data(), a.fc1.data(), 4 * n);
  cpu::linear_forward(out, a.gelu.data(), P + p.fc2_w, P + p.fc2_b, rows, 4 * C, C);
  for (int64_t i = 0; i < n; ++i) out[i] += a.mid[i];
}

template <class T>
void TransformerLayer<T>::backward(const T* P, T* G, const LayerActivations<T>& a, LayerScratch<T>& s,
                                   const T* dout, T* dx, int64_t B, int64_t S,
                                   const cpu::RopeTable<T>& rope) const {
  const int64_t rows = B * S, n = rows * C;
  s.resize(B, S, C, n_head);
  // G == nullptr: input gradient only (score-based denoising); the ops skip null parameter gradients.
  auto grad = [G](int64_t offset) { return G ? G + offset : nullptr; };
  // MLP branch: out = mid + fc2(gelu(fc1(LN2(mid)))).
  std::memcpy(s.d_mid.data(), dout, sizeof(T) * n);
  cpu::linear_backward(s.d_hidden.data(), grad(p.fc2_w), grad(p.fc2_b), dout, a.gelu.data(), P + p.fc2_w, rows, 4 * C, C);
  cpu::gelu_backward(s.d_fc1.data(), s.d_hidden.data(), a.fc1.data(), 4 * n);
  cpu::linear_backward(s.d_norm.data(), grad(p.fc1_w), grad(p.fc1_b), s.d_fc1.data(), a.ln2.data(), P + p.fc1_w, rows, C,
                       4 * C);
  cpu::layernorm_backward(s.d_mid.data(), grad(p.ln2_w), grad(p.ln2_b), s.d_norm.data(), a.mid.data(),
                          a.ln2_mean.data(), a.ln2_rstd.data(), P + p.ln2_w, rows, C, /*accumulate_din=*/true);
  // Attention branch: mid = x + proj(attn(rope(qkv(LN1(x))))).
  std::memcpy(dx, s.d_mid.data(), sizeof(T) * n);
  cpu::linear_backward(s.d_attn.data(), grad(p.proj_w), grad(p.proj_b), s.d_mid.data(), a.attn.data(), P + p.proj_w,
                       rows, C, C);
  cpu::attention_backward(s.d_qkv.data(), s.d_probs.data(), s.d_attn.data(), a.qkv.data(), a.probs.data(), B, S,
                          n_head, head_dim, attention_scale<T>(head_dim));
  cpu::rope_rotate(s.d_qkv.data(), B, S, S * 3 * C, 3 * C, 2 * n_head, rope, 0, /*inverse=*/true);
  cpu::linear_backward(s.d_norm.data(), grad(p.qkv_w), grad(p.qkv_b), s.d_qkv.data(), a.ln1.data(), P + p.qkv_w, rows, C,
                       3 * C);
  cpu::layernorm_backward(dx, grad(p.ln1_w), grad(p.ln1_b), s.d_norm.data(), a.input.data(), a.ln1_mean.data(),
                          a.ln1_rstd.data(), P + p.ln1_w, rows, C, /*accumulate_din=*/true);
}

template <class T>
void TransformerLayer<T>::forward_cached(const T* P, cpu::KVCache<T>& cache, DecodeScratch<T>& s, const T* x, T* out,
                                         int64_t B, int64_t n, int64_t start, const cpu::RopeTable<T>& rope) const {
  const int64_t rows = B * n, count = rows * C;
  s.resize(rows, C);
  T* fc1 = s.hidden.data();
  T* act = s.hidden.data() + 4 * count;
  cpu::layernorm_forward(s.ln.data(), s.mean.data(), s.rstd.data(), x, P + p.ln1_w, P + p.ln1_b, rows, C,
                         T(kLayerNormEps));
  cpu::linear_forward(s.qkv.data(), s.ln.data(), P + p.qkv_w, P + p.qkv_b, rows, C, 3 * C);
  cpu::rope_rotate(s.qkv.data(), B, n, n * 3 * C, 3 * C, 2 * n_head, rope, start, false);
  cpu::attention_cached_forward(s.attn.data(), cache, s.qkv.data(), B, n, start, attention_scale<T>(head_dim));
  cpu::linear_forward(s.mid.data(), s.attn.data(), P + p.proj_w, P + p.proj_b, rows, C, C);
  for (int64_t i = 0; i < count; ++i) s.mid[i] += x[i];
  cpu::layernorm_forward(s.ln.data(), s.mean.data(), s.rstd.data(), s.mid.data(), P + p.ln2_w, P + p.ln2_b, rows, C,
                         T(kLayerNormEps));
  cpu::linear_forward(fc1, s.ln.data(), P + p.fc1_w, P + p.fc1_b, rows, C, 4 * C);
  cpu::gelu_forward(act, fc1, 4 * count);
  cpu::linear_forward(out, act, P + p.fc2_w, P + p.fc2_b, rows, 4 * C, C);
  for (int64_t i = 0; i < count; ++i) out[i] += s.mid[i];
}

template struct DecodeScratch<float>;
template struct DecodeScratch<double>;
template struct LayerActivations<float>;
template struct LayerActivations<double>;
template struct LayerScratch<float>;
template struct LayerScratch<double>;
template struct TransformerLayer<float>;
template struct TransformerLayer<double>;

}  // namespace starflow::core
