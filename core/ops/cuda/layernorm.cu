// LayerNorm kernels: one warp per row for the forward pass and the input gradient (row statistics by warp
// shuffles, fp32), and a deterministic column reduction for dγ and dβ.
// Later: fuse with the residual add, vector (16-byte) loads, a block per row for wide rows.
#include "core/ops/cuda/layernorm.h"

#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/kernel_util.cuh"

namespace starflow::core::cuda {
namespace {

using detail::from_float;
using detail::to_float;
using detail::warp_sum;

constexpr int kWarpsPerBlock = 8;

template <class T>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const T* in, const T* gamma, const T* beta,
                                         int64_t rows, int C, float eps) {
  const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // the whole warp leaves together
  const T* x = in + row * C;
  float sum = 0.0f;
  for (int j = lane; j < C; j += 32) sum += to_float(x[j]);
  const float mu = warp_sum(sum) / C;
  // Two passes: E[x²] − E[x]² cancels badly when |mean| ≫ std (the row is re-read from L1/L2).
  float sq = 0.0f;
  for (int j = lane; j < C; j += 32) {
    const float d = to_float(x[j]) - mu;
    sq += d * d;
  }
  const float rs = 1.0f / sqrtf(warp_sum(sq) / C + eps);
  if (lane == 0) {
    mean[row] = mu;
    rstd[row] = rs;
  }
  T* y = out + row * C;
  for (int j = lane; j < C; j += 32) y[j] = from_float<T>((to_float(x[j]) - mu) * rs * to_float(gamma[j]) + to_float(beta[j]));
}

// din = rstd · (g − mean(g) − x̂·mean(g·x̂)), g = dout·γ.
template <class T>
__global__ void layernorm_input_grad_kernel(T* din, const T* dout, const T* in, const float* mean, const float* rstd,
                                            const T* gamma, int64_t rows, int C, bool accumulate) {
  const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const T* x = in + row * C;
  const T* dy = dout + row * C;
  const float mu = mean[row], rs = rstd[row];
  float sum_g = 0.0f, sum_gx = 0.0f;
  for (int j = lane; j < C; j += 32) {
    const float g = to_float(dy[j]) * to_float(gamma[j]);
    sum_g += g;
    sum_gx += g * (to_float(x[j]) - mu) * rs;
  }
  const float mean_g = warp_sum(sum_g) / C, mean_gx = warp_sum(sum_gx) / C;
  T* dx = din + row * C;
  for (int j = lane; j < C; j += 32) {
    const float value = rs * (to_float(dy[j]) * to_float(gamma[j]) - mean_g - (to_float(x[j]) - mu) * rs * mean_gx);
    dx[j] = from_float<T>(accumulate ? to_float(dx[j]) + value : value);
  }
}

template <class T>
struct LayerNormParamGradTerm {
  const T* dout;
  const T* in;
  const float* mean;
  const float* rstd;
  int64_t C;
  __device__ void operator()(int64_t r, int64_t c, float (&acc)[2]) const {
    const float d = to_float(dout[r * C + c]);
    acc[0] += d * (to_float(in[r * C + c]) - mean[r]) * rstd[r];
    acc[1] += d;
  }
};

// dγ += Σ_rows dout·x̂, dβ += Σ_rows dout.
template <class T>
__global__ void layernorm_param_grad_kernel(T* dgamma, T* dbeta, const T* dout, const T* in, const float* mean,
                                            const float* rstd, int64_t rows, int64_t C) {
  const int64_t c = blockIdx.x * int64_t(32) + threadIdx.x;
  float sums[2];
  detail::reduce_columns<2>(rows, C, c, LayerNormParamGradTerm<T>{dout, in, mean, rstd, C}, sums);
  if (threadIdx.y == 0 && c < C) {
    dgamma[c] = from_float<T>(to_float(dgamma[c]) + sums[0]);
    dbeta[c] = from_float<T>(to_float(dbeta[c]) + sums[1]);
  }
}

}  // namespace

template <class T>
void layernorm_forward(T* out, float* mean, float* rstd, const T* in, const T* gamma, const T* beta, int64_t rows,
                       int64_t C, float eps, cudaStream_t stream) {
  if (rows == 0 || C == 0) return;
  layernorm_forward_kernel<T><<<detail::grid_for_rows(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream>>>(
      out, mean, rstd, in, gamma, beta, rows, static_cast<int>(C), eps);
  cudaCheckLaunch();
}

template <class T>
void layernorm_backward(T* din, T* dgamma, T* dbeta, const T* dout, const T* in, const float* mean, const float* rstd,
                        const T* gamma, int64_t rows, int64_t C, bool accumulate_din, cudaStream_t stream) {
  if (rows == 0 || C == 0) return;
  if (din != nullptr) {
    layernorm_input_grad_kernel<T><<<detail::grid_for_rows(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream>>>(
        din, dout, in, mean, rstd, gamma, rows, static_cast<int>(C), accumulate_din);
    cudaCheckLaunch();
  }
  if (dgamma == nullptr || dbeta == nullptr) return;
  layernorm_param_grad_kernel<T><<<detail::column_grid(C), detail::column_block(), 0, stream>>>(dgamma, dbeta, dout,
                                                                                                 in, mean, rstd, rows, C);
  cudaCheckLaunch();
}

template void layernorm_forward<float>(float*, float*, float*, const float*, const float*, const float*, int64_t,
                                       int64_t, float, cudaStream_t);
template void layernorm_forward<bf16>(bf16*, float*, float*, const bf16*, const bf16*, const bf16*, int64_t, int64_t,
                                      float, cudaStream_t);
template void layernorm_backward<float>(float*, float*, float*, const float*, const float*, const float*, const float*,
                                        const float*, int64_t, int64_t, bool, cudaStream_t);
template void layernorm_backward<bf16>(bf16*, bf16*, bf16*, const bf16*, const bf16*, const float*, const float*,
                                       const bf16*, int64_t, int64_t, bool, cudaStream_t);

}  // namespace starflow::core::cuda
