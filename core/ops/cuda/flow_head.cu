// Flow head kernels: one thread per (row, d) element, the CPU twin's formulas in fp32.
#include "core/ops/cuda/flow_head.h"

#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/kernel_util.cuh"

namespace starflow::core::cuda {
namespace {

using detail::from_float;
using detail::to_float;

constexpr float kLogEMinus1 = 0.541324854612918f;  // ln(e − 1): softplus(0 + ln(e−1)) = 1

// The options as plain values (a kernel argument must be trivially copyable; FlowHeadOptions holds a double).
struct HeadParams {
  float soft_clip;
  bool softplus;
};
HeadParams params_of(const FlowHeadOptions& opt) { return {static_cast<float>(opt.soft_clip), opt.softplus}; }

__device__ __forceinline__ float softplus(float x) { return log1pf(expf(-fabsf(x))) + fmaxf(x, 0.0f); }
__device__ __forceinline__ float clip(float o, float s) { return s > 0.0f ? s * tanhf(o / s) : o; }

// σ(a) and dσ/da for the clipped a.
__device__ __forceinline__ void sigma_of(float a, bool use_softplus, float& sigma, float& dsigma) {
  if (use_softplus) {
    const float x = a + kLogEMinus1;
    sigma = softplus(x);
    dsigma = 1.0f / (1.0f + expf(-x));
  } else {
    sigma = expf(a);
    dsigma = sigma;
  }
}

template <class T>
__global__ void flow_head_forward_kernel(T* z, T* logdet, const T* o, const T* v, int64_t rows, int64_t D,
                                         HeadParams hp) {
  const int64_t total = rows * D;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / D, d = i % D;
    const float a = clip(to_float(o[r * 2 * D + d]), hp.soft_clip);
    const float mu = clip(to_float(o[r * 2 * D + D + d]), hp.soft_clip);
    float sigma, dsigma;
    sigma_of(a, hp.softplus, sigma, dsigma);
    z[i] = from_float<T>((to_float(v[i]) - mu) / sigma);
    logdet[i] = from_float<T>(hp.softplus ? -logf(sigma) : -a);
  }
}

template <class T>
__global__ void flow_head_sigma_mu_kernel(T* sigma_out, T* mu_out, const T* o, int64_t rows, int64_t D,
                                          HeadParams hp) {
  const int64_t total = rows * D;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / D, d = i % D;
    float sigma, dsigma;
    sigma_of(clip(to_float(o[r * 2 * D + d]), hp.soft_clip), hp.softplus, sigma, dsigma);
    sigma_out[i] = from_float<T>(sigma);
    mu_out[i] = from_float<T>(clip(to_float(o[r * 2 * D + D + d]), hp.soft_clip));
  }
}

// z = (v−μ)/σ, logdet = −log σ  ⇒  dL/dσ = −(g·z + dlogdet)/σ, dL/dμ = −g/σ, dL/dv = g/σ; the clip's
// derivative is 1 − tanh²(o/s).
template <class T>
__global__ void flow_head_backward_kernel(T* d_o, T* dv, const T* dz, float dlogdet, const T* o, const T* v,
                                          int64_t rows, int64_t D, HeadParams hp) {
  const int64_t total = rows * D;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / D, d = i % D;
    const float raw_a = to_float(o[r * 2 * D + d]), raw_mu = to_float(o[r * 2 * D + D + d]);
    const float a = clip(raw_a, hp.soft_clip), mu = clip(raw_mu, hp.soft_clip);
    float sigma, dsigma;
    sigma_of(a, hp.softplus, sigma, dsigma);
    const float g = to_float(dz[i]);
    const float z = (to_float(v[i]) - mu) / sigma;
    dv[i] = from_float<T>(g / sigma);
    const float dsig = -(g * z + dlogdet) / sigma;
    float da = dsig * dsigma, dmu = -g / sigma;
    if (hp.soft_clip > 0.0f) {
      const float ta = tanhf(raw_a / hp.soft_clip), tm = tanhf(raw_mu / hp.soft_clip);
      da *= 1.0f - ta * ta;
      dmu *= 1.0f - tm * tm;
    }
    d_o[r * 2 * D + d] = from_float<T>(da);
    d_o[r * 2 * D + D + d] = from_float<T>(dmu);
  }
}

}  // namespace

template <class T>
void flow_head_forward(T* z, T* logdet, const T* o, const T* v, int64_t rows, int64_t D, const FlowHeadOptions& opt,
                       cudaStream_t stream) {
  if (rows * D == 0) return;
  flow_head_forward_kernel<T><<<detail::grid_for(rows * D, 256), 256, 0, stream>>>(z, logdet, o, v, rows, D,
                                                                                   params_of(opt));
  cudaCheckLaunch();
}

template <class T>
void flow_head_sigma_mu(T* sigma, T* mu, const T* o, int64_t rows, int64_t D, const FlowHeadOptions& opt,
                        cudaStream_t stream) {
  if (rows * D == 0) return;
  flow_head_sigma_mu_kernel<T><<<detail::grid_for(rows * D, 256), 256, 0, stream>>>(sigma, mu, o, rows, D,
                                                                                    params_of(opt));
  cudaCheckLaunch();
}

template <class T>
void flow_head_backward(T* d_o, T* dv, const T* dz, float dlogdet, const T* o, const T* v, int64_t rows, int64_t D,
                        const FlowHeadOptions& opt, cudaStream_t stream) {
  if (rows * D == 0) return;
  flow_head_backward_kernel<T><<<detail::grid_for(rows * D, 256), 256, 0, stream>>>(d_o, dv, dz, dlogdet, o, v, rows,
                                                                                    D, params_of(opt));
  cudaCheckLaunch();
}

#define STARFLOW_INSTANTIATE(T)                                                                                 \
  template void flow_head_forward<T>(T*, T*, const T*, const T*, int64_t, int64_t, const FlowHeadOptions&,      \
                                     cudaStream_t);                                                             \
  template void flow_head_sigma_mu<T>(T*, T*, const T*, int64_t, int64_t, const FlowHeadOptions&, cudaStream_t); \
  template void flow_head_backward<T>(T*, T*, const T*, float, const T*, const T*, int64_t, int64_t,            \
                                      const FlowHeadOptions&, cudaStream_t);
STARFLOW_INSTANTIATE(float)
STARFLOW_INSTANTIATE(bf16)
#undef STARFLOW_INSTANTIATE

}  // namespace starflow::core::cuda
