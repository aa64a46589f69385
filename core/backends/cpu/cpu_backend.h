// The CPU backend: what the models (core/models/) are written against, implemented with the CPU ops
// (core/ops/cpu/) on host memory. The CUDA backend (core/backends/cuda/) has the same members on device memory;
// a model type is instantiated once per backend, so the layer, block and model logic exists once.
//
// A backend provides, as members of one object that a model owns (it may hold per-model state: here the tiled
// decode weights, on the GPU the stream and the graph caches):
//  - types: Scalar (parameters, gradients, activations), Stat (norm statistics), Buffer<U> (an owning array in
//    the backend's memory), HostBuffer<U> (host memory for downloads: pinned on a GPU), KVCache, RopeTable;
//  - the dense ops, forward and backward, with the CPU ops' arguments (pointers into the backend's memory);
//  - the few elementwise and copy steps the model code needs between ops;
//  - reductions whose results come back to the host as double (losses, Jacobi's stopping rule);
//  - decode hooks where the backend may run its own fast path (the CPU's fused decode step), or decline and
//    leave the model's op-by-op path to run.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/build_config.h"
#include "core/communicator.h"
#include "core/models/flow_config.h"
#include "core/ops/cpu/attention.h"
#include "core/ops/cpu/attention_cached.h"
#include "core/ops/cpu/attention_dense.h"
#include "core/ops/cpu/conv2d.h"
#include "core/ops/cpu/embedding.h"
#include "core/ops/cpu/flow_head.h"
#include "core/ops/cpu/gated_activation.h"
#include "core/ops/cpu/gelu.h"
#include "core/ops/cpu/group_norm.h"
#include "core/ops/cpu/kv_heads.h"
#include "core/ops/cpu/layernorm.h"
#include "core/ops/cpu/linear.h"
#include "core/ops/cpu/linear_small_batch.h"
#include "core/ops/cpu/rmsnorm.h"
#include "core/ops/cpu/rmsnorm_gain.h"
#include "core/ops/cpu/rope.h"
#include "core/ops/cpu/silu.h"
#include "core/ops/cpu/tokens.h"
#include "core/ops/cpu/upsample.h"
#include "core/optim/adamw.h"

namespace starflow::core {

template <class Backend>
class MetaBlock;
template <class Backend>
struct DecodeState;
template <class Backend>
class FlowModel;
struct SampleOptions;

namespace cpu_decode {
struct TiledWeights;  // core/backends/cpu/cpu_decoder.cpp
}

// The CPU fast path's own decode buffers (DecodeState::fast): the text prefix's group caches and conditions,
// and the fused step's transposed inputs.
template <class T>
struct CpuDecodeExtra {
  std::vector<cpu::KVCache<T>> prefix_caches;  // one group of samples' text prefix
  std::vector<T> prefix_y;                     // the distinct conditions, when some samples share one
  std::vector<T> xt_in, xt_attn, xt_hidden;    // a layer's transposed qkv/fc1, proj and fc2 inputs [K, Mp]
  std::vector<T> xt_io;                        // the block's transposed proj_in / proj_out inputs
};

template <class T>
class CpuBackend {
 public:
  using Scalar = T;
  using Stat = T;
  template <class U>
  using Buffer = std::vector<U>;
  template <class U>
  using HostBuffer = std::vector<U>;  // host memory that device downloads land in (here: any host memory)
  using KVCache = cpu::KVCache<T>;
  using RopeTable = cpu::RopeTable<T>;
  static constexpr const char* kName = "cpu";
  static constexpr bool kHostMemory = true;  // buffers are host memory: the host reads and writes them directly
  static constexpr ElementType kElementType = std::is_same_v<T, float> ? ElementType::F32 : ElementType::F64;
  // Collectives on host buffers need no stream.
  Stream stream() const { return nullptr; }

  CpuBackend();
  ~CpuBackend();
  CpuBackend(const CpuBackend&) = delete;
  CpuBackend& operator=(const CpuBackend&) = delete;

  // ---- memory: buffers live in host memory; uploads and downloads are copies.
  template <class U>
  static void resize(Buffer<U>& b, size_t n) {
    b.resize(n);
  }
  template <class U>
  static void grow(Buffer<U>& b, size_t n) {  // at least n elements, keeping a larger allocation
    if (b.size() < n) b.resize(n);
  }
  template <class U>
  static void upload(U* dst, const U* host, int64_t n) {
    std::copy_n(host, n, dst);
  }
  template <class U>
  static void download(U* host, const U* src, int64_t n) {
    std::copy_n(src, n, host);
  }
  template <class U>
  static void download_async(U* host, const U* src, int64_t n) {
    std::copy_n(src, n, host);
  }
  // The RoPE cos/sin table of the config's blocks (with_text: the conditioned blocks' [text; image] rows).
  static RopeTable rope_table(const FlowConfig& cfg, bool with_text) {
    const int64_t g = cfg.grid();
    return cpu::make_rope_table<T>(
        cpu::rope_angles(cfg.head_dim, g, g, cfg.rope_seq_len(), cfg.conditional(), cfg.txt_size, with_text),
        cfg.head_dim, cfg.hf_style_rope);
  }
  // Sizes a KV cache for B sequences of `capacity` positions (old contents need no clearing: every position is
  // written before a query reads it).
  static void reset_cache(KVCache& cache, int64_t B, int64_t heads, int64_t dh, int64_t capacity) {
    cache.reset(B, heads, dh, capacity);
  }

  // ---- dense ops (core/ops/cpu/*: the same arguments).
  static void linear_forward(T* out, const T* in, const T* w, const T* b, int64_t M, int64_t K, int64_t N) {
    cpu::linear_forward(out, in, w, b, M, K, N);
  }
  static void linear_backward(T* din, T* dw, T* db, const T* dout, const T* in, const T* w, int64_t M, int64_t K,
                              int64_t N, bool accumulate_din = false) {
    cpu::linear_backward(din, dw, db, dout, in, w, M, K, N, accumulate_din);
  }
  static void layernorm_forward(T* out, Stat* mean, Stat* rstd, const T* in, const T* g, const T* b, int64_t rows,
                                int64_t C, double eps) {
    cpu::layernorm_forward(out, mean, rstd, in, g, b, rows, C, T(eps));
  }
  static void layernorm_backward(T* din, T* dg, T* db, const T* dout, const T* in, const Stat* mean,
                                 const Stat* rstd, const T* g, int64_t rows, int64_t C, bool accumulate_din) {
    cpu::layernorm_backward(din, dg, db, dout, in, mean, rstd, g, rows, C, accumulate_din);
  }
  static void rmsnorm_forward(T* out, Stat* rrms, const T* in, const T* g, int64_t rows, int64_t C, double eps) {
    cpu::rmsnorm_forward(out, rrms, in, g, rows, C, T(eps));
  }
  static void rmsnorm_backward(T* din, T* dg, const T* dout, const T* in, const Stat* rrms, const T* g, int64_t rows,
                               int64_t C, bool accumulate_din = false) {
    cpu::rmsnorm_backward(din, dg, dout, in, rrms, g, rows, C, accumulate_din);
  }
  static void gelu_forward(T* out, const T* in, int64_t n) { cpu::gelu_forward(out, in, n); }
  static void gelu_backward(T* din, const T* dout, const T* in, int64_t n) { cpu::gelu_backward(din, dout, in, n); }
  // ---- the T5 encoder's ops: RMSNorm with a plain gain w (rmsnorm_* above takes the offset 1 + g), the gated
  // feed-forward activation (gate null: ungated), the embedding lookup (ids in this backend's memory).
  static void rmsnorm_gain_forward(T* out, Stat* rrms, const T* in, const T* w, int64_t rows, int64_t C,
                                   double eps) {
    cpu::rmsnorm_gain_forward(out, rrms, in, w, rows, C, T(eps));
  }
  static void rmsnorm_gain_backward(T* din, T* dw, const T* dout, const T* in, const Stat* rrms, const T* w,
                                    int64_t rows, int64_t C, bool accumulate_din = false) {
    cpu::rmsnorm_gain_backward(din, dw, dout, in, rrms, w, rows, C, accumulate_din);
  }
  static void gated_activation_forward(T* out, const T* a, const T* gate, int64_t n, Activation act) {
    cpu::gated_activation_forward(out, a, gate, n, act);
  }
  static void gated_activation_backward(T* da, T* dgate, const T* dout, const T* a, const T* gate, int64_t n,
                                        Activation act) {
    cpu::gated_activation_backward(da, dgate, dout, a, gate, n, act);
  }
  static void embedding_forward(T* out, const int64_t* ids, const T* table, int64_t n, int64_t D) {
    cpu::embedding_forward(out, ids, table, n, D);
  }
  static void embedding_backward(T* dtable, const T* dout, const int64_t* ids, int64_t n, int64_t D) {
    cpu::embedding_backward(dtable, dout, ids, n, D);
  }
  static void rope_rotate(T* x, int64_t batch, int64_t rows, int64_t batch_stride, int64_t row_stride,
                          int64_t n_heads, const RopeTable& table, int64_t row_offset, bool inverse) {
    cpu::rope_rotate(x, batch, rows, batch_stride, row_stride, n_heads, table, row_offset, inverse);
  }
  static void expand_kv_heads(T* out, const T* in, int64_t rows, int64_t q_heads, int64_t kv_heads, int64_t dh) {
    cpu::expand_kv_heads(out, in, rows, q_heads, kv_heads, dh);
  }
  static void reduce_kv_heads(T* din, const T* dout, int64_t rows, int64_t q_heads, int64_t kv_heads, int64_t dh) {
    cpu::reduce_kv_heads(din, dout, rows, q_heads, kv_heads, dh);
  }
  static void attention_forward(T* out, T* probs, const T* qkv, int64_t B, int64_t S, int64_t heads, int64_t dh,
                                double scale) {
    cpu::attention_forward(out, probs, qkv, B, S, heads, dh, T(scale));
  }
  static void attention_backward(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* probs, int64_t B,
                                 int64_t S, int64_t heads, int64_t dh, double scale) {
    cpu::attention_backward(dqkv, scratch, dout, qkv, probs, B, S, heads, dh, T(scale));
  }
  // Dense (bidirectional) attention on separate q, k, v [B, S, heads·dh]; bias [heads, S, S] and key_mask_add
  // [B, S] optional (the SD VAE's mid-block attention, the T5 encoder).
  static void attention_dense_forward(T* out, T* probs, const T* q, const T* k, const T* v, const T* bias,
                                      const T* key_mask_add, int64_t B, int64_t S, int64_t heads, int64_t dh,
                                      double scale) {
    cpu::attention_dense_forward(out, probs, q, k, v, bias, key_mask_add, B, S, heads, dh, T(scale));
  }
  static void attention_dense_backward(T* dq, T* dk, T* dv, T* dbias, T* scratch, const T* dout, const T* q,
                                       const T* k, const T* v, const T* probs, int64_t B, int64_t S, int64_t heads,
                                       int64_t dh, double scale) {
    cpu::attention_dense_backward(dq, dk, dv, dbias, scratch, dout, q, k, v, probs, B, S, heads, dh, T(scale));
  }
  static void flow_head_forward(T* z, T* logdet, const T* o, const T* v, int64_t rows, int64_t D,
                                const FlowHeadOptions& opt) {
    cpu::flow_head_forward(z, logdet, o, v, rows, D, opt);
  }
  static void flow_head_sigma_mu(T* sigma, T* mu, const T* o, int64_t rows, int64_t D, const FlowHeadOptions& opt) {
    cpu::flow_head_sigma_mu(sigma, mu, o, rows, D, opt);
  }
  static void flow_head_backward(T* d_o, T* dv, const T* dz, double dlogdet, const T* o, const T* v, int64_t rows,
                                 int64_t D, const FlowHeadOptions& opt) {
    cpu::flow_head_backward(d_o, dv, dz, T(dlogdet), o, v, rows, D, opt);
  }
  static void patchify(T* out, const T* in, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p) {
    cpu::patchify(out, in, B, C, H, W, p);
  }
  static void unpatchify(T* out, const T* in, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p) {
    cpu::unpatchify(out, in, B, C, H, W, p);
  }
  static void permute_tokens(T* out, const T* in, int64_t B, int64_t tokens, int64_t D, bool flip) {
    cpu::permute_tokens(out, in, B, tokens, D, flip);
  }

  // ---- image ops (the convolutional autoencoder).
  static void conv2d_forward(T* out, const T* in, const T* w, const T* b, const Conv2dShape& s) {
    cpu::conv2d_forward(out, in, w, b, s);
  }
  static void conv2d_backward(T* din, T* dw, T* db, const T* dout, const T* in, const T* w, const Conv2dShape& s) {
    cpu::conv2d_backward(din, dw, db, dout, in, w, s);
  }
  static void group_norm_forward(T* out, Stat* mean, Stat* rstd, const T* in, const T* g, const T* b, int64_t B,
                                 int64_t C, int64_t HW, int64_t groups, double eps) {
    cpu::group_norm_forward(out, mean, rstd, in, g, b, B, C, HW, groups, T(eps));
  }
  static void group_norm_backward(T* din, T* dg, T* db, const T* dout, const T* in, const Stat* mean,
                                  const Stat* rstd, const T* g, int64_t B, int64_t C, int64_t HW, int64_t groups) {
    cpu::group_norm_backward(din, dg, db, dout, in, mean, rstd, g, B, C, HW, groups);
  }
  static void silu_forward(T* out, const T* in, int64_t n) { cpu::silu_forward(out, in, n); }
  static void silu_backward(T* din, const T* dout, const T* in, int64_t n) { cpu::silu_backward(din, dout, in, n); }
  static void upsample_nearest2x_forward(T* out, const T* in, int64_t planes, int64_t H, int64_t W) {
    cpu::upsample_nearest2x_forward(out, in, planes, H, W);
  }
  static void upsample_nearest2x_backward(T* din, const T* dout, int64_t planes, int64_t H, int64_t W) {
    cpu::upsample_nearest2x_backward(din, dout, planes, H, W);
  }
  // Σ(a − b)² and Σ|a − b| in double (a reconstruction's errors).
  static std::pair<double, double> squared_and_absolute_error(const T* a, const T* b, int64_t n) {
    double sq = 0, abs = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
      sq += d * d;
      abs += std::fabs(d);
    }
    return {sq, abs};
  }
  // out = mse_scale·(a − b) + l1_scale·sign(a − b), sign(0) = 0 like torch.sign (their gradient).
  static void error_gradient(T* out, const T* a, const T* b, double mse_scale, double l1_scale, int64_t n) {
    const T ms = T(mse_scale), ls = T(l1_scale);
    for (int64_t i = 0; i < n; ++i) {
      const T d = a[i] - b[i];
      const T sign = d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0));
      out[i] = ms * d + ls * sign;
    }
  }

  // ---- decoding (sampling's cached path).
  // The decode linears: the small-batch kernel for float (its portable form without AVX2), whose per-row
  // results depend neither on how many rows a call holds nor on the thread count (BLAS's sums change with its
  // thread count); linear_forward for double. `layout`: how the weight is laid out (decode_weights).
  static void decode_linear(T* out, const T* in, const T* w, const T* b, int64_t M, int64_t K, int64_t N,
                            cpu::SmallBatchWeights layout = cpu::SmallBatchWeights::kRows);
  // q_heads: the query heads in qkv (grouped-query attention; 0: as many as the cache's KV heads).
  static void attention_cached_forward(T* out, KVCache& cache, const T* qkv, int64_t B, int64_t n, int64_t start,
                                       double scale, int64_t q_heads = 0) {
    cpu::attention_cached_forward(out, cache, qkv, B, n, start, T(scale), q_heads);
  }
  static void attention_cached_store(KVCache& cache, const T* qkv, int64_t B, int64_t n, int64_t start,
                                     int64_t q_heads = 0) {
    cpu::attention_cached_store(cache, qkv, B, n, start, q_heads);
  }

  // ---- copies and elementwise steps between ops.
  static void copy(T* dst, const T* src, int64_t n) {
    if (n > 0 && dst != src) std::memcpy(dst, src, sizeof(T) * n);
  }
  static void fill(T* dst, T value, int64_t n) { std::fill_n(dst, n, value); }
  // count blocks of `length` elements, from src + i·src_stride to dst + i·dst_stride (row gathers/scatters).
  static void copy_strided(T* dst, int64_t dst_stride, const T* src, int64_t src_stride, int64_t count,
                           int64_t length) {
    for (int64_t i = 0; i < count; ++i) std::memcpy(dst + i * dst_stride, src + i * src_stride, sizeof(T) * length);
  }
  // out [rows, C] = (out + bias) + residual, in that order (bias null: out + residual; residual null: out + bias):
  // a row-parallel layer's output after the reduce.
  static void add_bias_residual(T* out, const T* bias, const T* residual, int64_t rows, int64_t C) {
    if (!residual) {
      if (bias)
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < C; ++c) out[r * C + c] += bias[c];
      return;
    }
    if (!bias) {
      for (int64_t i = 0; i < rows * C; ++i) out[i] += residual[i];
      return;
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < C; ++c) out[r * C + c] = (out[r * C + c] + bias[c]) + residual[r * C + c];
  }
  // x = min(max(x, lo), hi), elementwise (the VAE posterior's log-variance clamp).
  static void clamp(T* x, double lo, double hi, int64_t n) {
    const T l = T(lo), h = T(hi);
    for (int64_t i = 0; i < n; ++i) x[i] = std::min(std::max(x[i], l), h);
  }
  // y += a·x (a given in double, applied in T).
  static void axpy(T* y, double a, const T* x, int64_t n) {
    const T at = T(a);
    for (int64_t i = 0; i < n; ++i) y[i] += at * x[i];
  }
  // x *= s (s applied in T): averaging gradients over data-parallel ranks, clipping.
  static void scale(T* x, double s, int64_t n) {
    const T st = T(s);
    for (int64_t i = 0; i < n; ++i) x[i] *= st;
  }
  // out = x / d, elementwise (the loss's ∂½·mean(z²)/∂z).
  static void divide(T* out, const T* x, double d, int64_t n) {
    const T dt = T(d);
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] / dt;
  }
  // out = x − step·g, computed in double (the denoising step).
  static void step_against(T* out, const T* x, const T* g, double step, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = T(double(x[i]) - step * double(g[i]));
  }
  // The SOS shift of a block's input: inp[b, 0] = sos, inp[b, t] = v[b, t − 1] (tokens of D).
  static void sos_shift(T* inp, const T* sos, const T* v, int64_t B, int64_t tokens, int64_t D) {
    for (int64_t b = 0; b < B; ++b) {
      std::memcpy(inp + b * tokens * D, sos, sizeof(T) * D);
      std::memcpy(inp + (b * tokens + 1) * D, v + b * tokens * D, sizeof(T) * (tokens - 1) * D);
    }
  }
  // Its backward: dv[b, t − 1] += dinp[b, t]; dsos += Σ_b dinp[b, 0] (sample by sample; dsos may be null).
  static void sos_shift_backward(T* dv, T* dsos, const T* dinp, int64_t B, int64_t tokens, int64_t D) {
    for (int64_t b = 0; b < B; ++b) {
      if (dsos)
        for (int64_t d = 0; d < D; ++d) dsos[d] += dinp[b * tokens * D + d];
      for (int64_t t = 1; t < tokens; ++t)
        for (int64_t d = 0; d < D; ++d) dv[(b * tokens + t - 1) * D + d] += dinp[(b * tokens + t) * D + d];
    }
  }

  // ---- the optimizer's steps on fp32 state (master weights, AdamW moments, EMA), for the trainer.
  // AdamW over n elements at optimiser step `step` (core::adamw_update_range); `weights`: the updated weights in T
  // as well, when the model's weights are not the fp32 master themselves (never on the CPU, which trains in
  // fp32).
  static void adamw_update(float* p, float* m, float* v, const T* g, int64_t n, const AdamWConfig& cfg, double lr,
                           int64_t step, T* weights = nullptr)
    requires std::is_same_v<T, float>
  {
    adamw_update_range(p, m, v, g, 0, n, 0, cfg, lr, step);
    if (weights && weights != p) std::copy_n(p, n, weights);
  }
  template <class U>
  static void zero(U* dst, int64_t n) {
    std::fill_n(dst, n, U(0));
  }
  // dst (fp32) = src.
  static void widen(float* dst, const T* src, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
  }
  // dst = src rounded to T.
  static void narrow(T* dst, const float* src, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(src[i]);
  }
  // ema = d·ema + (1 − d)·p.
  static void ema_update(float* ema, const float* p, double decay, int64_t n) {
    const float d = float(decay);
    for (int64_t i = 0; i < n; ++i) ema[i] = d * ema[i] + (1.f - d) * p[i];
  }
  static void synchronize() {}

  // ---- reductions to the host (accumulated in double whatever T is, continuing from `start`, in order).
  static double sum(const T* x, int64_t n, double start = 0) {
    double s = start;
    for (int64_t i = 0; i < n; ++i) s += x[i];
    return s;
  }
  static double sum_squares(const T* x, int64_t n, double start = 0) {
    double s = start;
    for (int64_t i = 0; i < n; ++i) s += double(x[i]) * x[i];
    return s;
  }

  // ---- sampling steps.
  // STARFlow guidance for rows [0, half) (conditional) against [half, 2·half) (null); both halves receive the
  // guided σ and μ, so the unconditional branch follows the guided history. n: elements per half.
  static void guidance(T* sigma, T* mu, int64_t n, double w);
  // One Jacobi (or sequential) update of a chunk: for rows r < rows and i < len, val = v[r·v_stride + i]·σ + μ
  // (σ, μ [rows, len]) is written to x[r·x_stride + i]; returns Σ(val − old)² and Σ val² in double.
  static std::pair<double, double> affine_update(T* x, int64_t x_stride, const T* v, int64_t v_stride,
                                                 const T* sigma, const T* mu, int64_t rows, int64_t len);

  // ---- concurrent decoding of sample groups: run_groups calls fn(group, worker) for every group, each worker
  // (a thread, whose own ops then run on it alone) with its own decode state.
  static int64_t group_workers(int64_t groups) {
    return std::min<int64_t>(groups, omp_in_parallel() ? 1 : omp_get_max_threads());
  }
  template <class Fn>
  static void run_groups(int64_t groups, int64_t workers, Fn&& fn) {
    std::exception_ptr error;
#pragma omp parallel num_threads(static_cast<int>(workers))
    {
      omp_set_num_threads(1);  // this thread's decode regions: a team of one
      const int64_t worker = omp_get_thread_num(), nth = omp_get_num_threads();
      try {
        for (int64_t g = worker; g < groups; g += nth) fn(g, worker);
      } catch (...) {
#pragma omp critical(starflow_run_groups_error)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
  }

  // ---- decode hooks (core/backends/cpu/cpu_decoder.cpp). Each returns false where the fast path does not
  // apply; the model's op-by-op path then runs.
  // The weights the decode linears read for block k, and their layout: a copy in the small-batch kernel's tile
  // layout for this host's ISA (cpu::decode_tile_layout), kept between sampling calls and refreshed when the
  // parameters' version or the ISA changed (float with the AVX2 kernel), else the parameters themselves.
  struct DecodeWeights {
    const T* data = nullptr;
    cpu::SmallBatchWeights layout = cpu::SmallBatchWeights::kRows;
  };
  using DecodeExtra = CpuDecodeExtra<T>;
  DecodeWeights decode_weights(const FlowModel<CpuBackend>& model, int64_t k) const;
  // The text prefix of a conditioned block: samples with the same condition share one computation, and it
  // runs in groups of a fixed size, so a sample's keys and values do not depend on the batch.
  bool begin_decode(const MetaBlock<CpuBackend>& block, const T* P, DecodeState<CpuBackend>& st, const T* y,
                    int64_t B, const RopeTable& rope) const;
  // A chunk as one fused parallel region (float, AVX2, no tensor parallelism, few rows).
  bool decode_chunk(const MetaBlock<CpuBackend>& block, const T* P, DecodeState<CpuBackend>& st, const T* inp,
                    int64_t start, int64_t n, T* sigma, T* mu, const RopeTable& rope) const;
  // How many samples each thread decodes on its own in sequential decoding (0: no split; the whole batch goes
  // through each op with the threads sharing every op).
  int64_t samples_per_thread_group(const MetaBlock<CpuBackend>& block, const SampleOptions& opt, int64_t B,
                                   int64_t rows_per_sample) const;

 private:
  std::unique_ptr<cpu_decode::TiledWeights> tiled_;
};

}  // namespace starflow::core
