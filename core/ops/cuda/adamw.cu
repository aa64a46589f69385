// AdamW kernel: one thread per element, the constants computed on the host in double and rounded to fp32
// exactly as core/optim/adamw.cpp does, so that the CPU and GPU steps differ only by rounding.
#include "core/ops/cuda/adamw.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/kernel_util.cuh"

namespace starflow::core::cuda {
namespace {

using detail::to_float;

struct AdamWConstants {
  float decay, step_size, inv_sqrt_bc2, beta1, beta2, eps;
};

// p ← p·(1 − lr·wd); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; p ← p − (lr/bc1)·m / (√v/√bc2 + eps).
template <class G>
__global__ void adamw_kernel(float* params, float* m, float* v, const G* grads, int64_t n, AdamWConstants k,
                             __nv_bfloat16* params_bf16) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = to_float(grads[i]);
    float p = params[i] * k.decay;
    const float mi = k.beta1 * m[i] + (1.0f - k.beta1) * g;
    const float vi = k.beta2 * v[i] + (1.0f - k.beta2) * g * g;
    p -= k.step_size * mi / (sqrtf(vi) * k.inv_sqrt_bc2 + k.eps);
    m[i] = mi;
    v[i] = vi;
    params[i] = p;
    if (params_bf16 != nullptr) params_bf16[i] = __float2bfloat16_rn(p);
  }
}

}  // namespace

template <class G>
void adamw_update(float* params, float* m, float* v, const G* grads, int64_t n, const AdamWConfig& cfg, double lr,
                  int64_t step, __nv_bfloat16* params_bf16, cudaStream_t stream) {
  if (step < 1) throw std::invalid_argument("adamw_update: step counts from 1, got " + std::to_string(step));
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(cfg.beta1, double(step));
  const double bc2 = 1.0 - std::pow(cfg.beta2, double(step));
  const AdamWConstants k{float(1.0 - lr * cfg.weight_decay), float(lr / bc1), float(1.0 / std::sqrt(bc2)),
                         float(cfg.beta1), float(cfg.beta2), float(cfg.eps)};
  adamw_kernel<G><<<detail::grid_for(n, 256), 256, 0, stream>>>(params, m, v, grads, n, k, params_bf16);
  cudaCheckLaunch();
}

template void adamw_update<float>(float*, float*, float*, const float*, int64_t, const AdamWConfig&, double, int64_t,
                                  __nv_bfloat16*, cudaStream_t);
template void adamw_update<bf16>(float*, float*, float*, const bf16*, int64_t, const AdamWConfig&, double, int64_t,
                                 __nv_bfloat16*, cudaStream_t);

}  // namespace starflow::core::cuda
