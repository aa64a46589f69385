// The CUDA backend: the members the models are written against (see core/backends/cpu/cpu_backend.h for the
// contract), implemented with the CUDA ops (core/ops/cuda/) on device memory, all ordered on one stream the
// backend owns. T is the storage of parameters, gradients and activations: float (fp32 mode, compared with the
// golden fixtures within their float32 tolerances) or bf16 (training); arithmetic inside the ops is fp32, and
// the flow's σ, log σ and affine step are fp32 whatever T is, as the official code does under autocast.
// Not yet run on a GPU: see core/ops/cuda/README.md and tools/gpu-check.sh.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/communicator.h"
#include "core/models/flow_config.h"
#include "core/ops/cpu/rope.h"
#include "core/ops/cuda/adamw.h"
#include "core/ops/cuda/attention.h"
#include "core/ops/cuda/attention_cached.h"
#include "core/ops/cuda/attention_dense.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/device_buffer.h"
#include "core/ops/cuda/elementwise.h"
#include "core/ops/cuda/embedding.h"
#include "core/ops/cuda/flow_head.h"
#include "core/ops/cuda/flow_steps.h"
#include "core/ops/cuda/gated_activation.h"
#include "core/ops/cuda/gelu.h"
#include "core/ops/cuda/kv_heads.h"
#include "core/ops/cuda/layernorm.h"
#include "core/ops/cuda/linear.h"
#include "core/ops/cuda/pinned_buffer.h"
#include "core/ops/cuda/rmsnorm.h"
#include "core/ops/cuda/rmsnorm_gain.h"
#include "core/ops/cuda/rope.h"
#include "core/ops/cuda/tokens.h"

namespace starflow::core {

template <class Backend>
class MetaBlock;
template <class Backend>
struct DecodeState;
template <class Backend>
class FlowModel;
struct SampleOptions;

// The CUDA fast path's own decode buffers (DecodeState::fast): none yet. The token step captured in a CUDA
// graph will keep its graph and the addresses it was captured with here.
struct CudaDecodeExtra {};

template <class T>
class CudaBackend {
 public:
  using Scalar = T;
  using Stat = float;
  template <class U>
  using Buffer = cuda::DeviceBuffer<U>;
  template <class U>
  using HostBuffer = cuda::PinnedBuffer<U>;  // page-locked: fast, asynchronous downloads (checkpoint snapshots)
  using KVCache = cuda::DeviceKVCache<T>;
  using RopeTable = cuda::DeviceRopeTable;
  using DecodeExtra = CudaDecodeExtra;
  // The GPU's decode linears read the parameters as they are: one layout.
  enum class DecodeLayout { kParameters };
  struct DecodeWeights {
    const T* data = nullptr;
    DecodeLayout layout = DecodeLayout::kParameters;
  };
  static constexpr const char* kName = "cuda";
  static constexpr bool kHostMemory = false;  // buffers are device memory: the host stages through download/upload
  static constexpr ElementType kElementType = std::is_same_v<T, float> ? ElementType::F32 : ElementType::BF16;

  CudaBackend() { cudaCheck(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~CudaBackend() {
    if (stream_) cudaStreamDestroy(stream_);
  }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;
  Stream stream() const { return stream_; }
  void synchronize() const { cudaCheck(cudaStreamSynchronize(stream_)); }

  // ---- memory: device buffers; a resize to another size drops the contents (the model code never relies on
  // them across one).
  template <class U>
  static void resize(Buffer<U>& b, size_t n) {
    if (b.size() != n) b.allocate(n);
  }
  template <class U>
  static void grow(Buffer<U>& b, size_t n) {
    if (b.size() < n) b.allocate(n);
  }
  // Copies between host and device of any element type (the model's T, the optimizer's fp32 state), ordered on
  // the stream; they return when the copy is complete.
  template <class U>
  void upload(U* dst, const U* host, int64_t n) const {
    if (n <= 0) return;
    cudaCheck(cudaMemcpyAsync(dst, host, sizeof(U) * n, cudaMemcpyHostToDevice, stream_));
    synchronize();
  }
  template <class U>
  void download(U* host, const U* src, int64_t n) const {
    if (n <= 0) return;
    cudaCheck(cudaMemcpyAsync(host, src, sizeof(U) * n, cudaMemcpyDeviceToHost, stream_));
    synchronize();
  }
  // A download ordered on the stream that returns before it is complete (synchronize() ends it): many small
  // copies into a HostBuffer at one synchronisation.
  template <class U>
  void download_async(U* host, const U* src, int64_t n) const {
    if (n > 0) cudaCheck(cudaMemcpyAsync(host, src, sizeof(U) * n, cudaMemcpyDeviceToHost, stream_));
  }
  RopeTable rope_table(const FlowConfig& cfg, bool with_text) const {
    const int64_t g = cfg.grid();
    return cuda::upload_rope_table(cpu::make_rope_table<float>(
        cpu::rope_angles(cfg.head_dim, g, g, cfg.rope_seq_len(), cfg.conditional(), cfg.txt_size, with_text),
        cfg.head_dim, cfg.hf_style_rope));
  }
  void reset_cache(KVCache& cache, int64_t B, int64_t heads, int64_t dh, int64_t capacity) const {
    cache.reset(B, heads, dh, capacity, stream_);
  }

  // ---- dense ops.
  void linear_forward(T* out, const T* in, const T* w, const T* b, int64_t M, int64_t K, int64_t N) const {
    cuda::linear_forward(out, in, w, b, M, K, N, stream_);
  }
  void linear_backward(T* din, T* dw, T* db, const T* dout, const T* in, const T* w, int64_t M, int64_t K, int64_t N,
                       bool accumulate_din = false) const {
    cuda::linear_backward(din, dw, db, dout, in, w, M, K, N, accumulate_din, stream_);
  }
  void layernorm_forward(T* out, Stat* mean, Stat* rstd, const T* in, const T* g, const T* b, int64_t rows, int64_t C,
                         double eps) const {
    cuda::layernorm_forward(out, mean, rstd, in, g, b, rows, C, float(eps), stream_);
  }
  void layernorm_backward(T* din, T* dg, T* db, const T* dout, const T* in, const Stat* mean, const Stat* rstd,
                          const T* g, int64_t rows, int64_t C, bool accumulate_din) const {
    cuda::layernorm_backward(din, dg, db, dout, in, mean, rstd, g, rows, C, accumulate_din, stream_);
  }
  void rmsnorm_forward(T* out, Stat* rrms, const T* in, const T* g, int64_t rows, int64_t C, double eps) const {
    cuda::rmsnorm_forward(out, rrms, in, g, rows, C, float(eps), stream_);
  }
  void rmsnorm_backward(T* din, T* dg, const T* dout, const T* in, const Stat* rrms, const T* g, int64_t rows,
                        int64_t C, bool accumulate_din = false) const {
    cuda::rmsnorm_backward(din, dg, dout, in, rrms, g, rows, C, accumulate_din, stream_);
  }
  void gelu_forward(T* out, const T* in, int64_t n) const { cuda::gelu_forward(out, in, n, stream_); }
  void gelu_backward(T* din, const T* dout, const T* in, int64_t n) const {
    cuda::gelu_backward(din, dout, in, n, stream_);
  }
  // The T5 encoder's ops (see CpuBackend): RMSNorm with a plain gain, the gated activation, the embedding lookup.
  void rmsnorm_gain_forward(T* out, Stat* rrms, const T* in, const T* w, int64_t rows, int64_t C, double eps) const {
    cuda::rmsnorm_gain_forward(out, rrms, in, w, rows, C, float(eps), stream_);
  }
  void rmsnorm_gain_backward(T* din, T* dw, const T* dout, const T* in, const Stat* rrms, const T* w, int64_t rows,
                             int64_t C, bool accumulate_din = false) const {
    cuda::rmsnorm_gain_backward(din, dw, dout, in, rrms, w, rows, C, accumulate_din, stream_);
  }
  void gated_activation_forward(T* out, const T* a, const T* gate, int64_t n, Activation act) const {
    cuda::gated_activation_forward(out, a, gate, n, act, stream_);
  }
  void gated_activation_backward(T* da, T* dgate, const T* dout, const T* a, const T* gate, int64_t n,
                                 Activation act) const {
    cuda::gated_activation_backward(da, dgate, dout, a, gate, n, act, stream_);
  }
  void embedding_forward(T* out, const int64_t* ids, const T* table, int64_t n, int64_t D) const {
    cuda::embedding_forward(out, ids, table, n, D, stream_);
  }
  void embedding_backward(T* dtable, const T* dout, const int64_t* ids, int64_t n, int64_t D) const {
    cuda::embedding_backward(dtable, dout, ids, n, D, stream_);
  }
  void rope_rotate(T* x, int64_t batch, int64_t rows, int64_t batch_stride, int64_t row_stride, int64_t n_heads,
                   const RopeTable& table, int64_t row_offset, bool inverse) const {
    cuda::rope_rotate(x, batch, rows, batch_stride, row_stride, n_heads, table, row_offset, inverse, stream_);
  }
  void expand_kv_heads(T* out, const T* in, int64_t rows, int64_t q_heads, int64_t kv_heads, int64_t dh) const {
    cuda::expand_kv_heads(out, in, rows, q_heads, kv_heads, dh, stream_);
  }
  void reduce_kv_heads(T* din, const T* dout, int64_t rows, int64_t q_heads, int64_t kv_heads, int64_t dh) const {
    cuda::reduce_kv_heads(din, dout, rows, q_heads, kv_heads, dh, stream_);
  }
  void attention_forward(T* out, T* probs, const T* qkv, int64_t B, int64_t S, int64_t heads, int64_t dh,
                         double scale) const {
    cuda::attention_forward(out, probs, qkv, B, S, heads, dh, float(scale), stream_);
  }
  void attention_backward(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* probs, int64_t B, int64_t S,
                          int64_t heads, int64_t dh, double scale) const {
    cuda::attention_backward(dqkv, scratch, dout, qkv, probs, B, S, heads, dh, float(scale), stream_);
  }
  void attention_dense_forward(T* out, T* probs, const T* q, const T* k, const T* v, const T* bias,
                               const T* key_mask_add, int64_t B, int64_t S, int64_t heads, int64_t dh,
                               double scale) const {
    cuda::attention_dense_forward(out, probs, q, k, v, bias, key_mask_add, B, S, heads, dh, float(scale), stream_);
  }
  void attention_dense_backward(T* dq, T* dk, T* dv, T* dbias, T* scratch, const T* dout, const T* q, const T* k,
                                const T* v, const T* probs, int64_t B, int64_t S, int64_t heads, int64_t dh,
                                double scale) const {
    cuda::attention_dense_backward(dq, dk, dv, dbias, scratch, dout, q, k, v, probs, B, S, heads, dh, float(scale),
                                   stream_);
  }
  void flow_head_forward(T* z, T* logdet, const T* o, const T* v, int64_t rows, int64_t D,
                         const FlowHeadOptions& opt) const {
    cuda::flow_head_forward(z, logdet, o, v, rows, D, opt, stream_);
  }
  void flow_head_sigma_mu(T* sigma, T* mu, const T* o, int64_t rows, int64_t D, const FlowHeadOptions& opt) const {
    cuda::flow_head_sigma_mu(sigma, mu, o, rows, D, opt, stream_);
  }
  void flow_head_backward(T* d_o, T* dv, const T* dz, double dlogdet, const T* o, const T* v, int64_t rows, int64_t D,
                          const FlowHeadOptions& opt) const {
    cuda::flow_head_backward(d_o, dv, dz, float(dlogdet), o, v, rows, D, opt, stream_);
  }
  void patchify(T* out, const T* in, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p) const {
    cuda::patchify(out, in, B, C, H, W, p, stream_);
  }
  void unpatchify(T* out, const T* in, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p) const {
    cuda::unpatchify(out, in, B, C, H, W, p, stream_);
  }
  void permute_tokens(T* out, const T* in, int64_t B, int64_t tokens, int64_t D, bool flip) const {
    cuda::permute_tokens(out, in, B, tokens, D, flip, stream_);
  }

  // ---- decoding.
  void decode_linear(T* out, const T* in, const T* w, const T* b, int64_t M, int64_t K, int64_t N,
                     DecodeLayout = DecodeLayout::kParameters) const {
    cuda::linear_forward(out, in, w, b, M, K, N, stream_);
  }
  void attention_cached_forward(T* out, KVCache& cache, const T* qkv, int64_t B, int64_t n, int64_t start,
                                double scale, int64_t q_heads = 0) const {
    cuda::attention_cached_forward(out, cache, qkv, B, n, start, float(scale), q_heads, stream_);
  }
  void attention_cached_store(KVCache& cache, const T* qkv, int64_t B, int64_t n, int64_t start,
                              int64_t q_heads = 0) const {
    cuda::attention_cached_store(cache, qkv, B, n, start, q_heads, stream_);
  }

  // ---- copies and elementwise steps.
  void copy(T* dst, const T* src, int64_t n) const {
    if (n > 0 && dst != src) cudaCheck(cudaMemcpyAsync(dst, src, sizeof(T) * n, cudaMemcpyDeviceToDevice, stream_));
  }
  void fill(T* dst, T value, int64_t n) const { cuda::fill(dst, static_cast<float>(value), n, stream_); }
  void copy_strided(T* dst, int64_t dst_stride, const T* src, int64_t src_stride, int64_t count, int64_t length) const {
    cuda::copy_strided(dst, dst_stride, src, src_stride, count, length, stream_);
  }
  void add_bias_residual(T* out, const T* bias, const T* residual, int64_t rows, int64_t C) const {
    cuda::add_bias_residual(out, bias, residual, rows, C, stream_);
  }
  void clamp(T* x, double lo, double hi, int64_t n) const { cuda::clamp(x, float(lo), float(hi), n, stream_); }
  void axpy(T* y, double a, const T* x, int64_t n) const { cuda::axpy(y, float(a), x, n, stream_); }
  void divide(T* out, const T* x, double d, int64_t n) const { cuda::divide(out, x, float(d), n, stream_); }
  void scale(T* x, double s, int64_t n) const { cuda::scale(x, float(s), n, stream_); }
  void step_against(T* out, const T* x, const T* g, double step, int64_t n) const {
    cuda::step_against(out, x, g, float(step), n, stream_);
  }
  void sos_shift(T* inp, const T* sos, const T* v, int64_t B, int64_t tokens, int64_t D) const {
    cuda::sos_shift(inp, sos, v, B, tokens, D, stream_);
  }
  void sos_shift_backward(T* dv, T* dsos, const T* dinp, int64_t B, int64_t tokens, int64_t D) const {
    cuda::sos_shift_backward(dv, dsos, dinp, B, tokens, D, stream_);
  }

  // ---- the optimizer's steps on fp32 state (CpuBackend's twins). In bf16 the model's weights are the
  // update's bf16 copy of the fp32 master; in fp32 they are the master.
  void adamw_update(float* p, float* m, float* v, const T* g, int64_t n, const AdamWConfig& cfg, double lr,
                    int64_t step, T* weights = nullptr) const {
    if constexpr (std::is_same_v<T, float>) {
      cuda::adamw_update(p, m, v, g, n, cfg, lr, step, nullptr, stream_);
      if (weights && weights != p) copy(weights, p, n);
    } else {
      cuda::adamw_update(p, m, v, g, n, cfg, lr, step, weights, stream_);
    }
  }
  template <class U>
  void zero(U* dst, int64_t n) const {
    if (n > 0) cudaCheck(cudaMemsetAsync(dst, 0, sizeof(U) * n, stream_));
  }
  // dst (fp32) = src: the master weights from the model's.
  void widen(float* dst, const T* src, int64_t n) const {
    if constexpr (std::is_same_v<T, float>) copy(dst, src, n);
    else cuda::convert(dst, src, n, stream_);
  }
  // dst = src rounded to T: the model's weights from the master.
  void narrow(T* dst, const float* src, int64_t n) const {
    if constexpr (std::is_same_v<T, float>) copy(dst, src, n);
    else cuda::convert(dst, src, n, stream_);
  }
  void ema_update(float* ema, const float* p, double decay, int64_t n) const {
    cuda::ema_update(ema, p, float(decay), n, stream_);
  }

  // ---- reductions to the host.
  double sum(const T* x, int64_t n, double start = 0) const { return cuda::sum(x, n, start, stream_); }
  double sum_squares(const T* x, int64_t n, double start = 0) const {
    return cuda::sum_squares(x, n, start, stream_);
  }

  // ---- sampling steps.
  void guidance(T* sigma, T* mu, int64_t n, double w) const { cuda::guidance(sigma, mu, n, float(w), stream_); }
  std::pair<double, double> affine_update(T* x, int64_t x_stride, const T* v, int64_t v_stride, const T* sigma,
                                          const T* mu, int64_t rows, int64_t len) const {
    return cuda::affine_update(x, x_stride, v, v_stride, sigma, mu, rows, len, stream_);
  }

  // ---- concurrency and decode hooks: the batch runs as one on the device; no fast path yet (the token step in
  // a CUDA graph is the planned one), so the model's op-by-op decode runs.
  static int64_t group_workers(int64_t) { return 1; }
  template <class Fn>
  static void run_groups(int64_t groups, int64_t, Fn&& fn) {
    for (int64_t g = 0; g < groups; ++g) fn(g, 0);
  }
  DecodeWeights decode_weights(const FlowModel<CudaBackend>& model, int64_t) const;
  bool begin_decode(const MetaBlock<CudaBackend>&, const T*, DecodeState<CudaBackend>&, const T*, int64_t,
                    const RopeTable&) const {
    return false;
  }
  bool decode_chunk(const MetaBlock<CudaBackend>&, const T*, DecodeState<CudaBackend>&, const T*, int64_t, int64_t,
                    T*, T*, const RopeTable&) const {
    return false;
  }
  int64_t samples_per_thread_group(const MetaBlock<CudaBackend>&, const SampleOptions&, int64_t, int64_t) const {
    return 0;
  }

 private:
  cudaStream_t stream_ = nullptr;
};

}  // namespace starflow::core
