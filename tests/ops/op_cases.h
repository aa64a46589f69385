// The op registry (in the spirit of ggml's test-backend-ops): every op the models call through a backend,
// listed once with its shapes, written once against the backend interface. tests/ops/op_checks.h runs each case
// in three modes: finite differences in double (CpuBackend<double>), float against double, and CUDA against the
// CPU (CudaBackend<float> vs CpuBackend<float>, in the GPU test binary).
//
// A case is a type with:
//   kName; inputs() and outputs(): the tensors (size, whether differentiable, value range); kStats: elements of
//   the backend's Stat type the forward saves for backward (norm statistics);
//   forward(be, t) and, unless kHasBackward is false, backward(be, t): given t.din zeroed and t.dout set,
//   write (or accumulate into) the input gradients;
//   kCpuOnly: the CUDA backend has no twin yet (the convolutional autoencoder's ops).
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "core/models/flow_config.h"
#include "core/ops/activation.h"
#include "core/ops/conv2d_shape.h"
#include "core/ops/flow_head_options.h"

namespace starflow::tests::ops {

// An input (differentiable: checked by finite differences; lo, hi: the range its values are drawn from) or an
// output (differentiable: part of the scalar loss Σ w⊙output with random w; `projection`, when set, replaces w
// by that constant, for outputs whose upstream gradient is uniform, such as the log-dets).
struct Arg {
  const char* name;
  int64_t size;
  bool differentiable = true;
  double lo = -1, hi = 1;
  std::optional<double> projection = std::nullopt;
};

// The buffers of one run of a case on backend B (in B's memory).
template <class B>
struct OpTensors {
  using T = typename B::Scalar;
  template <class U>
  using Buffer = typename B::template Buffer<U>;
  std::vector<Buffer<T>> in, din, out, dout;
  Buffer<typename B::Stat> stats;
  std::optional<typename B::RopeTable> rope;
  std::optional<typename B::KVCache> cache;
  T* i(int k) { return in[k].data(); }
  T* di(int k) { return din[k].data(); }
  T* o(int k) { return out[k].data(); }
  T* dO(int k) { return dout[k].data(); }
  typename B::Stat* s(int64_t offset = 0) { return stats.data() + offset; }
};

struct LinearCase {
  static constexpr const char* kName = "linear";
  static constexpr int64_t M = 5, K = 7, N = 6, kStats = 0;
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static std::vector<Arg> inputs() { return {{"x", M * K}, {"weight", N * K}, {"bias", N}}; }
  static std::vector<Arg> outputs() { return {{"y", M * N}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.linear_forward(t.o(0), t.i(0), t.i(1), t.i(2), M, K, N);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.linear_backward(t.di(0), t.di(1), t.di(2), t.dO(0), t.i(0), t.i(1), M, K, N);
  }
};

struct LayerNormCase {
  static constexpr const char* kName = "layernorm";
  static constexpr int64_t R = 6, C = 10, kStats = 2 * R;
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static std::vector<Arg> inputs() { return {{"x", R * C}, {"gamma", C, true, 0.5, 1.5}, {"beta", C}}; }
  static std::vector<Arg> outputs() { return {{"y", R * C}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.layernorm_forward(t.o(0), t.s(), t.s(R), t.i(0), t.i(1), t.i(2), R, C, 1e-5);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.layernorm_backward(t.di(0), t.di(1), t.di(2), t.dO(0), t.i(0), t.s(), t.s(R), t.i(1), R, C, false);
  }
};

struct RmsNormCase {
  static constexpr const char* kName = "rmsnorm";
  static constexpr int64_t R = 6, C = 12, kStats = R;
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static std::vector<Arg> inputs() { return {{"x", R * C}, {"g", C, true, -0.5, 0.5}}; }
  static std::vector<Arg> outputs() { return {{"y", R * C}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.rmsnorm_forward(t.o(0), t.s(), t.i(0), t.i(1), R, C, 1e-6);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.rmsnorm_backward(t.di(0), t.di(1), t.dO(0), t.i(0), t.s(), t.i(1), R, C);
  }
};

struct GeluCase {
  static constexpr const char* kName = "gelu";
  static constexpr int64_t N = 67, kStats = 0;
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static std::vector<Arg> inputs() { return {{"x", N, true, -3, 3}}; }
  static std::vector<Arg> outputs() { return {{"y", N}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.gelu_forward(t.o(0), t.i(0), N);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.gelu_backward(t.di(0), t.dO(0), t.i(0), N);
  }
};

// RoPE on the q and k of a qkv buffer [B, S, 3C], with the model's 3-D (text-axis) table; the rotation is in
// place, so the case copies its input to the output first (the same on every backend).
struct RopeCase {
  static constexpr const char* kName = "rope";
  static constexpr int64_t Bn = 2, H = 2, dh = 20, C = H * dh, L = 2, S = L + 9, kStats = 0;
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static core::FlowConfig config() {
    core::FlowConfig c;
    c.in_channels = 1;
    c.img_size = 3;
    c.channels = C;
    c.head_dim = dh;
    c.txt_size = L;
    c.txt_dim = 3;
    c.num_blocks = 1;
    c.layers_per_block = {1};
    return c;
  }
  static std::vector<Arg> inputs() { return {{"qkv", Bn * S * 3 * C}}; }
  static std::vector<Arg> outputs() { return {{"rotated", Bn * S * 3 * C}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    if (!t.rope) t.rope = be.rope_table(config(), /*with_text=*/true);
    be.copy(t.o(0), t.i(0), Bn * S * 3 * C);
    be.rope_rotate(t.o(0), Bn, S, S * 3 * C, 3 * C, 2 * H, *t.rope, 0, false);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.copy(t.di(0), t.dO(0), Bn * S * 3 * C);
    be.rope_rotate(t.di(0), Bn, S, S * 3 * C, 3 * C, 2 * H, *t.rope, 0, true);
  }
};

struct AttentionCase {
  static constexpr const char* kName = "attention";
  static constexpr int64_t Bn = 2, S = 7, H = 2, dh = 4, C = H * dh, kStats = 0;
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static std::vector<Arg> inputs() { return {{"qkv", Bn * S * 3 * C}}; }
  static std::vector<Arg> outputs() { return {{"out", Bn * S * C}, {"probs", Bn * H * S * S, false}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.attention_forward(t.o(0), t.o(1), t.i(0), Bn, S, H, dh, 0.5);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    typename B::template Buffer<typename B::Scalar> scratch;
    B::resize(scratch, Bn * H * S * S);
    be.attention_backward(t.di(0), scratch.data(), t.dO(0), t.i(0), t.o(1), Bn, S, H, dh, 0.5);
  }
};

struct FlowHeadCase {
  static constexpr const char* kName = "flow_head";
  // D = 20: whole and partial packets of the float form at either width (8 or 16 lanes).
  static constexpr int64_t R = 3, D = 20, kStats = 0;
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static std::vector<Arg> inputs() { return {{"o", R * 2 * D, true, -2, 2}, {"v", R * D}}; }
  static constexpr double kDlogdet = -0.3;
  static std::vector<Arg> outputs() { return {{"z", R * D}, {"logdet", R * D, true, -1, 1, kDlogdet}}; }
  static core::FlowHeadOptions options() { return {3.0, true}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.flow_head_forward(t.o(0), t.o(1), t.i(0), t.i(1), R, D, options());
  }
  // The loss's gradient w.r.t. every log-det element is uniform (the loss averages them): kDlogdet.
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.flow_head_backward(t.di(0), t.di(1), t.dO(0), kDlogdet, t.i(0), t.i(1), R, D, options());
  }
};

struct PermuteCase {
  static constexpr const char* kName = "permute_tokens";
  static constexpr int64_t Bn = 2, Tn = 5, D = 3, kStats = 0;
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static std::vector<Arg> inputs() { return {{"x", Bn * Tn * D}}; }
  static std::vector<Arg> outputs() { return {{"y", Bn * Tn * D}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.permute_tokens(t.o(0), t.i(0), Bn, Tn, D, true);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.permute_tokens(t.di(0), t.dO(0), Bn, Tn, D, true);
  }
};

struct PatchifyCase {
  static constexpr const char* kName = "patchify";
  static constexpr int64_t Bn = 2, C = 3, H = 4, W = 4, P = 2, kStats = 0;
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static std::vector<Arg> inputs() { return {{"image", Bn * C * H * W}}; }
  static std::vector<Arg> outputs() { return {{"tokens", Bn * C * H * W}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.patchify(t.o(0), t.i(0), Bn, C, H, W, P);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.unpatchify(t.di(0), t.dO(0), Bn, C, H, W, P);
  }
};

struct SosShiftCase {
  static constexpr const char* kName = "sos_shift";
  static constexpr int64_t Bn = 3, Tn = 4, D = 2, kStats = 0;
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static std::vector<Arg> inputs() { return {{"sos", D}, {"v", Bn * Tn * D}}; }
  static std::vector<Arg> outputs() { return {{"inp", Bn * Tn * D}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.sos_shift(t.o(0), t.i(0), t.i(1), Bn, Tn, D);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.sos_shift_backward(t.di(1), t.di(0), t.dO(0), Bn, Tn, D);
  }
};

// The row-parallel epilogue: out = (out + bias) + residual (in place: the case copies x into the output first).
struct BiasResidualCase {
  static constexpr const char* kName = "add_bias_residual";
  static constexpr int64_t R = 4, C = 5, kStats = 0;
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static std::vector<Arg> inputs() { return {{"x", R * C}, {"bias", C}, {"residual", R * C}}; }
  static std::vector<Arg> outputs() { return {{"y", R * C}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.copy(t.o(0), t.i(0), R * C);
    be.add_bias_residual(t.o(0), t.i(1), t.i(2), R, C);
  }
  // dx = dy, dresidual = dy, dbias = Σ_rows dy: written with the copy and axpy steps the backends have.
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.copy(t.di(0), t.dO(0), R * C);
    be.copy(t.di(2), t.dO(0), R * C);
    for (int64_t r = 0; r < R; ++r) be.axpy(t.di(1), 1.0, t.dO(0) + r * C, C);
  }
};

// Cached attention (sampling): a chunk of n new positions after `start` cached ones, forward only.
struct CachedAttentionCase {
  static constexpr const char* kName = "attention_cached";
  static constexpr int64_t Bn = 2, H = 2, dh = 8, C = H * dh, start = 3, n = 2, cap = 8, kStats = 0;
  static constexpr bool kHasBackward = false, kCpuOnly = false;
  static std::vector<Arg> inputs() { return {{"prefix_qkv", Bn * start * 3 * C, false}, {"qkv", Bn * n * 3 * C, false}}; }
  static std::vector<Arg> outputs() { return {{"out", Bn * n * C}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    t.cache.emplace();
    be.reset_cache(*t.cache, Bn, H, dh, cap);
    be.attention_cached_store(*t.cache, t.i(0), Bn, start, 0);
    be.attention_cached_forward(t.o(0), *t.cache, t.i(1), Bn, n, start, 0.25);
  }
  template <class B>
  static void backward(const B&, OpTensors<B>&) {}
};

struct Conv2dCase {
  static constexpr const char* kName = "conv2d";
  static core::Conv2dShape shape() { return {2, 3, 6, 6, 4, 3, 2, 1}; }
  static constexpr int64_t kStats = 0;
  static constexpr bool kHasBackward = true, kCpuOnly = true;
  static std::vector<Arg> inputs() {
    const auto s = shape();
    return {{"x", s.batch * s.in_channels * s.height * s.width}, {"weight", s.weight_size()}, {"bias", s.out_channels}};
  }
  static std::vector<Arg> outputs() {
    const auto s = shape();
    return {{"y", s.batch * s.out_channels * s.out_height() * s.out_width()}};
  }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.conv2d_forward(t.o(0), t.i(0), t.i(1), t.i(2), shape());
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.conv2d_backward(t.di(0), t.di(1), t.di(2), t.dO(0), t.i(0), t.i(1), shape());
  }
};

struct GroupNormCase {
  static constexpr const char* kName = "group_norm";
  static constexpr int64_t Bn = 2, C = 6, HW = 5, G = 3, kStats = 2 * Bn * G;
  static constexpr bool kHasBackward = true, kCpuOnly = true;
  static std::vector<Arg> inputs() { return {{"x", Bn * C * HW}, {"gamma", C, true, 0.5, 1.5}, {"beta", C}}; }
  static std::vector<Arg> outputs() { return {{"y", Bn * C * HW}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.group_norm_forward(t.o(0), t.s(), t.s(Bn * G), t.i(0), t.i(1), t.i(2), Bn, C, HW, G, 1e-6);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.group_norm_backward(t.di(0), t.di(1), t.di(2), t.dO(0), t.i(0), t.s(), t.s(Bn * G), t.i(1), Bn, C, HW, G);
  }
};

struct SiluCase {
  static constexpr const char* kName = "silu";
  static constexpr int64_t N = 41, kStats = 0;
  static constexpr bool kHasBackward = true, kCpuOnly = true;
  static std::vector<Arg> inputs() { return {{"x", N, true, -4, 4}}; }
  static std::vector<Arg> outputs() { return {{"y", N}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.silu_forward(t.o(0), t.i(0), N);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.silu_backward(t.di(0), t.dO(0), t.i(0), N);
  }
};

struct UpsampleCase {
  static constexpr const char* kName = "upsample_nearest2x";
  static constexpr int64_t P = 3, H = 3, W = 4, kStats = 0;
  static constexpr bool kHasBackward = true, kCpuOnly = true;
  static std::vector<Arg> inputs() { return {{"x", P * H * W}}; }
  static std::vector<Arg> outputs() { return {{"y", 4 * P * H * W}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.upsample_nearest2x_forward(t.o(0), t.i(0), P, H, W);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.upsample_nearest2x_backward(t.di(0), t.dO(0), P, H, W);
  }
};

// The SD VAE's downsampler: zero padding on the right and bottom only, then a 3×3 stride-2 convolution.
struct Conv2dPadRightBottomCase : Conv2dCase {
  static constexpr const char* kName = "conv2d_pad_right_bottom";
  static core::Conv2dShape shape() {
    core::Conv2dShape s{2, 3, 6, 7, 4, 3, 2, 0};
    s.pad_bottom = 1;
    s.pad_right = 1;
    return s;
  }
  static std::vector<Arg> inputs() {
    const auto s = shape();
    return {{"x", s.batch * s.in_channels * s.height * s.width}, {"weight", s.weight_size()}, {"bias", s.out_channels}};
  }
  static std::vector<Arg> outputs() {
    const auto s = shape();
    return {{"y", s.batch * s.out_channels * s.out_height() * s.out_width()}};
  }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.conv2d_forward(t.o(0), t.i(0), t.i(1), t.i(2), shape());
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.conv2d_backward(t.di(0), t.di(1), t.di(2), t.dO(0), t.i(0), t.i(1), shape());
  }
};

// Dense attention on separate q, k, v with T5's optional additive position bias [H, S, S] and key mask [B, S]
// (the VAE passes neither); the bias is differentiable (T5 learns it).
struct AttentionDenseCase {
  static constexpr const char* kName = "attention_dense";
  static constexpr int64_t Bn = 2, S = 5, H = 2, dh = 3, C = H * dh, kStats = 0;
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static std::vector<Arg> inputs() {
    return {{"q", Bn * S * C}, {"k", Bn * S * C}, {"v", Bn * S * C}, {"bias", H * S * S, true, -2, 2},
            {"key_mask", Bn * S, false, -3, 0}};
  }
  static std::vector<Arg> outputs() { return {{"out", Bn * S * C}, {"probs", Bn * H * S * S, false}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.attention_dense_forward(t.o(0), t.o(1), t.i(0), t.i(1), t.i(2), t.i(3), t.i(4), Bn, S, H, dh, 0.7);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    typename B::template Buffer<typename B::Scalar> scratch;
    B::resize(scratch, Bn * H * S * S);
    be.attention_dense_backward(t.di(0), t.di(1), t.di(2), t.di(3), scratch.data(), t.dO(0), t.i(0), t.i(1), t.i(2),
                                t.o(1), Bn, S, H, dh, 0.7);
  }
};

// T5's RMSNorm: a plain gain w (rmsnorm's parameter is the offset 1 + g).
struct RmsNormGainCase {
  static constexpr const char* kName = "rmsnorm_gain";
  static constexpr int64_t R = 6, C = 12, kStats = R;
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static std::vector<Arg> inputs() { return {{"x", R * C}, {"w", C, true, -1.5, 1.5}}; }
  static std::vector<Arg> outputs() { return {{"y", R * C}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.rmsnorm_gain_forward(t.o(0), t.s(), t.i(0), t.i(1), R, C, 1e-6);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.rmsnorm_gain_backward(t.di(0), t.di(1), t.dO(0), t.i(0), t.s(), t.i(1), R, C);
  }
};

// T5 v1.1's feed-forward activation: gelu_new (tanh) on one branch times the linear gate.
struct GatedActivationCase {
  static constexpr const char* kName = "gated_activation";
  static constexpr int64_t N = 67, kStats = 0;
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static std::vector<Arg> inputs() { return {{"a", N, true, -3, 3}, {"gate", N}}; }
  static std::vector<Arg> outputs() { return {{"y", N}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.gated_activation_forward(t.o(0), t.i(0), t.i(1), N, core::Activation::kGeluTanh);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.gated_activation_backward(t.di(0), t.di(1), t.dO(0), t.i(0), t.i(1), N, core::Activation::kGeluTanh);
  }
};

// The token embedding: fixed ids (with repeats, so the backward's sums are exercised), the table differentiable.
struct EmbeddingCase {
  static constexpr const char* kName = "embedding";
  static constexpr int64_t V = 5, D = 6, n = 7, kStats = 0;
  static constexpr int64_t kIds[n] = {3, 0, 4, 3, 1, 3, 2};
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static std::vector<Arg> inputs() { return {{"table", V * D}}; }
  static std::vector<Arg> outputs() { return {{"rows", n * D}}; }
  template <class B>
  static typename B::template Buffer<int64_t> ids(const B& be) {
    typename B::template Buffer<int64_t> b;
    B::resize(b, n);
    be.upload(b.data(), kIds, n);
    return b;
  }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.embedding_forward(t.o(0), ids(be).data(), t.i(0), n, D);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.embedding_backward(t.di(0), t.dO(0), ids(be).data(), n, D);
  }
};

// hf-style RoPE (the official hf_style_rope): pairs (m, m + dh/2), a property of the model's table.
struct RopeHalfSplitCase : RopeCase {
  static constexpr const char* kName = "rope_half_split";
  static core::FlowConfig config() {
    core::FlowConfig c = RopeCase::config();
    c.hf_style_rope = true;
    return c;
  }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    if (!t.rope) t.rope = be.rope_table(config(), /*with_text=*/true);
    RopeCase::forward(be, t);
  }
};

// Grouped-query attention's KV-head repetition (expand) and its backward (the group sums).
struct KvHeadsCase {
  static constexpr const char* kName = "kv_heads";
  static constexpr int64_t rows = 5, Hq = 6, Hkv = 2, dh = 4, kStats = 0;
  static constexpr bool kHasBackward = true, kCpuOnly = false;
  static std::vector<Arg> inputs() { return {{"qkv", rows * (Hq + 2 * Hkv) * dh}}; }
  static std::vector<Arg> outputs() { return {{"qkv_full", rows * 3 * Hq * dh}}; }
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.expand_kv_heads(t.o(0), t.i(0), rows, Hq, Hkv, dh);
  }
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.reduce_kv_heads(t.di(0), t.dO(0), rows, Hq, Hkv, dh);
  }
};

// Every case, in one list: the checks run each of them.
template <class... Cases>
struct CaseList {};
using AllCases = CaseList<LinearCase, LayerNormCase, RmsNormCase, GeluCase, RopeCase, AttentionCase, FlowHeadCase,
                          PermuteCase, PatchifyCase, SosShiftCase, BiasResidualCase, CachedAttentionCase, Conv2dCase,
                          GroupNormCase, SiluCase, UpsampleCase, Conv2dPadRightBottomCase, AttentionDenseCase,
                          RmsNormGainCase, GatedActivationCase, EmbeddingCase, RopeHalfSplitCase, KvHeadsCase>;

}  // namespace starflow::tests::ops
