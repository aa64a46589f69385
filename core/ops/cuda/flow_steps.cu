// The model's small steps on the GPU (flow_steps.h): grid-stride loops in fp32, reductions in double with a
// fixed grid and a fixed order of the partial sums.
#include "core/ops/cuda/flow_steps.h"

#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/device_buffer.h"
#include "core/ops/cuda/kernel_util.cuh"

namespace starflow::core::cuda {
namespace {

using detail::from_float;
using detail::to_float;

constexpr int kThreads = 256;
constexpr int kReduceBlocks = 256;  // fixed: the partial sums, hence the result's bits, do not depend on n

#define GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

template <class T>
__global__ void copy_strided_kernel(T* dst, int64_t dst_stride, const T* src, int64_t src_stride, int64_t count,
                                    int64_t length) {
  GRID_STRIDE(e, count * length) {
    const int64_t i = e / length, j = e % length;
    dst[i * dst_stride + j] = src[i * src_stride + j];
  }
}

template <class T>
__global__ void fill_kernel(T* dst, float value, int64_t n) {
  GRID_STRIDE(i, n) dst[i] = from_float<T>(value);
}

template <class T>
__global__ void add_bias_residual_kernel(T* out, const T* bias, const T* residual, int64_t rows, int64_t C) {
  GRID_STRIDE(i, rows * C) {
    const float o = to_float(out[i]) + (bias ? to_float(bias[i % C]) : 0.0f);
    out[i] = from_float<T>(residual ? o + to_float(residual[i]) : o);
  }
}

template <class T>
__global__ void axpy_kernel(T* y, float a, const T* x, int64_t n) {
  GRID_STRIDE(i, n) y[i] = from_float<T>(to_float(y[i]) + a * to_float(x[i]));
}

template <class T>
__global__ void divide_kernel(T* out, const T* x, float d, int64_t n) {
  GRID_STRIDE(i, n) out[i] = from_float<T>(to_float(x[i]) / d);
}

template <class T>
__global__ void scale_kernel(T* x, float s, int64_t n) {
  GRID_STRIDE(i, n) x[i] = from_float<T>(to_float(x[i]) * s);
}

__global__ void ema_update_kernel(float* ema, const float* p, float d, int64_t n) {
  GRID_STRIDE(i, n) ema[i] = d * ema[i] + (1.f - d) * p[i];
}

template <class T>
__global__ void step_against_kernel(T* out, const T* x, const T* g, float step, int64_t n) {
  GRID_STRIDE(i, n) out[i] = from_float<T>(to_float(x[i]) - step * to_float(g[i]));
}

template <class T>
__global__ void sos_shift_kernel(T* inp, const T* sos, const T* v, int64_t B, int64_t tokens, int64_t D) {
  GRID_STRIDE(e, B * tokens * D) {
    const int64_t d = e % D, t = (e / D) % tokens, b = e / (D * tokens);
    inp[e] = t == 0 ? sos[d] : v[(b * tokens + t - 1) * D + d];
  }
}

template <class T>
__global__ void sos_shift_backward_kernel(T* dv, const T* dinp, int64_t B, int64_t tokens, int64_t D) {
  GRID_STRIDE(e, B * (tokens - 1) * D) {
    const int64_t d = e % D, t = (e / D) % (tokens - 1) + 1, b = e / (D * (tokens - 1));
    T& slot = dv[(b * tokens + t - 1) * D + d];
    slot = from_float<T>(to_float(slot) + to_float(dinp[(b * tokens + t) * D + d]));
  }
}

template <class T>
__global__ void sos_gradient_kernel(T* dsos, const T* dinp, int64_t B, int64_t tokens, int64_t D) {
  GRID_STRIDE(d, D) {
    float acc = to_float(dsos[d]);
    for (int64_t b = 0; b < B; ++b) acc += to_float(dinp[b * tokens * D + d]);  // in sample order
    dsos[d] = from_float<T>(acc);
  }
}

__device__ __forceinline__ double block_sum_double(double v) {
  __shared__ double partial[kThreads];
  partial[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  const double total = partial[0];
  __syncthreads();
  return total;
}

// partials [2 · gridDim.x]: each block's Σ term0 and Σ term1.
template <class T, bool kSquare>
__global__ void sum_kernel(const T* x, int64_t n, double* partials) {
  double acc = 0;
  GRID_STRIDE(i, n) {
    const double v = static_cast<double>(to_float(x[i]));
    acc += kSquare ? v * v : v;
  }
  const double total = block_sum_double(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

template <class T>
__global__ void affine_update_kernel(T* x, int64_t x_stride, const T* v, int64_t v_stride, const T* sigma,
                                     const T* mu, int64_t rows, int64_t len, double* partials) {
  double diff = 0, norm = 0;
  GRID_STRIDE(c, rows * len) {
    const int64_t r = c / len, i = c % len;
    const float val = to_float(v[r * v_stride + i]) * to_float(sigma[c]) + to_float(mu[c]);
    T& slot = x[r * x_stride + i];
    const float stored = to_float(from_float<T>(val));
    const double d = static_cast<double>(stored) - static_cast<double>(to_float(slot));
    diff += d * d;
    norm += static_cast<double>(stored) * stored;
    slot = from_float<T>(val);
  }
  const double d_total = block_sum_double(diff);
  const double n_total = block_sum_double(norm);
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = d_total;
    partials[gridDim.x + blockIdx.x] = n_total;
  }
}

template <class T>
__global__ void kv_store_kernel(T* k, T* v, const T* qkv, int64_t B, int64_t n, int64_t start, int64_t H, int64_t dh,
                                int64_t cap, int64_t Hq) {
  const int64_t C = H * dh, Q = Hq * dh;  // qkv rows are [q (Hq heads) | k (H) | v (H)]
  GRID_STRIDE(e, B * n * C) {
    const int64_t f = e % C, i = (e / C) % n, b = e / (C * n), h = f / dh, d = f % dh;
    const int64_t row = (b * n + i) * (Q + 2 * C);
    const int64_t at = ((b * H + h) * cap + start + i) * dh + d;
    k[at] = qkv[row + Q + f];
    v[at] = qkv[row + Q + C + f];
  }
}

template <class T>
__global__ void guidance_kernel(T* sigma, T* mu, int64_t n, float w) {
  GRID_STRIDE(i, n) {
    const float sc = to_float(sigma[i]), su = to_float(sigma[n + i]), mc = to_float(mu[i]), mu_u = to_float(mu[n + i]);
    const float r = fminf(sc / su, 1.0f), s = r * r;
    const float denom = 1.0f + w - w * s;
    const T se = from_float<T>(sc / sqrtf(denom)), me = from_float<T>(((1.0f + w) * mc - w * s * mu_u) / denom);
    sigma[i] = se;
    sigma[n + i] = se;
    mu[i] = me;
    mu[n + i] = me;
  }
}

// The device scratch of the reductions (one per host thread: a reduction waits for its stream anyway).
double* reduce_scratch() {
  thread_local DeviceBuffer<double> scratch(2 * kReduceBlocks);
  return scratch.data();
}

std::pair<double, double> finish_reduction(const double* partials, int blocks, bool two, cudaStream_t stream) {
  double host[2 * kReduceBlocks];
  cudaCheck(cudaMemcpyAsync(host, partials, sizeof(double) * blocks * (two ? 2 : 1), cudaMemcpyDeviceToHost, stream));
  cudaCheck(cudaStreamSynchronize(stream));
  double a = 0, b = 0;
  for (int i = 0; i < blocks; ++i) a += host[i];  // in block order
  if (two)
    for (int i = 0; i < blocks; ++i) b += host[blocks + i];
  return {a, b};
}

}  // namespace

template <class T>
void copy_strided(T* dst, int64_t dst_stride, const T* src, int64_t src_stride, int64_t count, int64_t length,
                  cudaStream_t stream) {
  if (count <= 0 || length <= 0) return;
  copy_strided_kernel<T><<<detail::grid_for(count * length, kThreads), kThreads, 0, stream>>>(dst, dst_stride, src,
                                                                                              src_stride, count, length);
  cudaCheckLaunch();
}

template <class T>
void fill(T* dst, float value, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  fill_kernel<T><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(dst, value, n);
  cudaCheckLaunch();
}

template <class T>
void add_bias_residual(T* out, const T* bias, const T* residual, int64_t rows, int64_t C, cudaStream_t stream) {
  if (rows * C <= 0) return;
  add_bias_residual_kernel<T><<<detail::grid_for(rows * C, kThreads), kThreads, 0, stream>>>(out, bias, residual, rows,
                                                                                              C);
  cudaCheckLaunch();
}

template <class T>
void axpy(T* y, float a, const T* x, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  axpy_kernel<T><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(y, a, x, n);
  cudaCheckLaunch();
}

template <class T>
void scale(T* x, float s, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  scale_kernel<T><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(x, s, n);
  cudaCheckLaunch();
}

void ema_update(float* ema, const float* p, float d, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  ema_update_kernel<<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(ema, p, d, n);
  cudaCheckLaunch();
}

template <class T>
void divide(T* out, const T* x, float d, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  divide_kernel<T><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(out, x, d, n);
  cudaCheckLaunch();
}

template <class T>
void step_against(T* out, const T* x, const T* g, float step, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  step_against_kernel<T><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(out, x, g, step, n);
  cudaCheckLaunch();
}

template <class T>
void sos_shift(T* inp, const T* sos, const T* v, int64_t B, int64_t tokens, int64_t D, cudaStream_t stream) {
  if (B * tokens * D <= 0) return;
  sos_shift_kernel<T><<<detail::grid_for(B * tokens * D, kThreads), kThreads, 0, stream>>>(inp, sos, v, B, tokens, D);
  cudaCheckLaunch();
}

template <class T>
void sos_shift_backward(T* dv, T* dsos, const T* dinp, int64_t B, int64_t tokens, int64_t D, cudaStream_t stream) {
  if (B * D <= 0) return;
  if (dsos) {
    sos_gradient_kernel<T><<<detail::grid_for(D, kThreads), kThreads, 0, stream>>>(dsos, dinp, B, tokens, D);
    cudaCheckLaunch();
  }
  if (tokens > 1) {
    sos_shift_backward_kernel<T>
        <<<detail::grid_for(B * (tokens - 1) * D, kThreads), kThreads, 0, stream>>>(dv, dinp, B, tokens, D);
    cudaCheckLaunch();
  }
}

template <class T>
double sum(const T* x, int64_t n, double start, cudaStream_t stream) {
  if (n <= 0) return start;
  double* partials = reduce_scratch();
  sum_kernel<T, false><<<kReduceBlocks, kThreads, 0, stream>>>(x, n, partials);
  cudaCheckLaunch();
  return start + finish_reduction(partials, kReduceBlocks, false, stream).first;
}

template <class T>
double sum_squares(const T* x, int64_t n, double start, cudaStream_t stream) {
  if (n <= 0) return start;
  double* partials = reduce_scratch();
  sum_kernel<T, true><<<kReduceBlocks, kThreads, 0, stream>>>(x, n, partials);
  cudaCheckLaunch();
  return start + finish_reduction(partials, kReduceBlocks, false, stream).first;
}

template <class T>
void attention_cached_store(DeviceKVCache<T>& cache, const T* qkv, int64_t B, int64_t n, int64_t start,
                            int64_t q_heads, cudaStream_t stream) {
  if (start + n > cache.capacity || B > cache.batch)
    throw std::invalid_argument("attention_cached_store: positions or batch beyond the cache");
  const int64_t total = B * n * cache.n_head * cache.head_dim;
  if (total <= 0) return;
  kv_store_kernel<T><<<detail::grid_for(total, kThreads), kThreads, 0, stream>>>(
      cache.k.data(), cache.v.data(), qkv, B, n, start, cache.n_head, cache.head_dim, cache.capacity,
      q_heads > 0 ? q_heads : cache.n_head);
  cudaCheckLaunch();
}

template <class T>
void guidance(T* sigma, T* mu, int64_t n, float w, cudaStream_t stream) {
  if (n <= 0) return;
  guidance_kernel<T><<<detail::grid_for(n, kThreads), kThreads, 0, stream>>>(sigma, mu, n, w);
  cudaCheckLaunch();
}

template <class T>
std::pair<double, double> affine_update(T* x, int64_t x_stride, const T* v, int64_t v_stride, const T* sigma,
                                        const T* mu, int64_t rows, int64_t len, cudaStream_t stream) {
  if (rows * len <= 0) return {0, 0};
  double* partials = reduce_scratch();
  affine_update_kernel<T><<<kReduceBlocks, kThreads, 0, stream>>>(x, x_stride, v, v_stride, sigma, mu, rows, len,
                                                                   partials);
  cudaCheckLaunch();
  return finish_reduction(partials, kReduceBlocks, true, stream);
}

#define STARFLOW_INSTANTIATE(T)                                                                                    \
  template void copy_strided<T>(T*, int64_t, const T*, int64_t, int64_t, int64_t, cudaStream_t);                 \
  template void fill<T>(T*, float, int64_t, cudaStream_t);                                                      \
  template void add_bias_residual<T>(T*, const T*, const T*, int64_t, int64_t, cudaStream_t);                   \
  template void axpy<T>(T*, float, const T*, int64_t, cudaStream_t);                                            \
  template void divide<T>(T*, const T*, float, int64_t, cudaStream_t);                                          \
  template void scale<T>(T*, float, int64_t, cudaStream_t);                                                     \
  template void step_against<T>(T*, const T*, const T*, float, int64_t, cudaStream_t);                          \
  template void sos_shift<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, cudaStream_t);                  \
  template void sos_shift_backward<T>(T*, T*, const T*, int64_t, int64_t, int64_t, cudaStream_t);               \
  template double sum<T>(const T*, int64_t, double, cudaStream_t);                                              \
  template double sum_squares<T>(const T*, int64_t, double, cudaStream_t);                                      \
  template void attention_cached_store<T>(DeviceKVCache<T>&, const T*, int64_t, int64_t, int64_t, int64_t,        \
                                          cudaStream_t);                                                          \
  template void guidance<T>(T*, T*, int64_t, float, cudaStream_t);                                              \
  template std::pair<double, double> affine_update<T>(T*, int64_t, const T*, int64_t, const T*, const T*, int64_t, \
                                                       int64_t, cudaStream_t);
STARFLOW_INSTANTIATE(float)
STARFLOW_INSTANTIATE(bf16)
#undef STARFLOW_INSTANTIATE

}  // namespace starflow::core::cuda
