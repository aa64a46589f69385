// RMSNorm (1 + g) kernels: one warp per row for the forward pass and the input gradient, a deterministic
// column reduction for dg.
#include "core/ops/cuda/rmsnorm.h"

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
__global__ void rmsnorm_forward_kernel(T* out, float* rrms, const T* in, const T* g, int64_t rows, int C, float eps) {
  const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const T* x = in + row * C;
  float sq = 0.0f;
  for (int j = lane; j < C; j += 32) {
    const float v = to_float(x[j]);
    sq += v * v;
  }
  const float rr = 1.0f / sqrtf(warp_sum(sq) / C + eps);
  if (lane == 0) rrms[row] = rr;
  T* y = out + row * C;
  for (int j = lane; j < C; j += 32) y[j] = from_float<T>(to_float(x[j]) * rr * (1.0f + to_float(g[j])));
}

// With d = dout·(1+g) and ρ = rrms: din = ρ·d − ρ³·x·mean(d·x).
template <class T>
__global__ void rmsnorm_input_grad_kernel(T* din, const T* dout, const T* in, const float* rrms, const T* g,
                                          int64_t rows, int C, bool accumulate) {
  const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const T* x = in + row * C;
  const T* dy = dout + row * C;
  float sum_dx = 0.0f;
  for (int j = lane; j < C; j += 32) sum_dx += to_float(dy[j]) * (1.0f + to_float(g[j])) * to_float(x[j]);
  const float rr = rrms[row];
  const float coef = rr * rr * rr * warp_sum(sum_dx) / C;
  T* dx = din + row * C;
  for (int j = lane; j < C; j += 32) {
    const float value = rr * to_float(dy[j]) * (1.0f + to_float(g[j])) - coef * to_float(x[j]);
    dx[j] = from_float<T>(accumulate ? to_float(dx[j]) + value : value);
  }
}

template <class T>
struct RmsNormParamGradTerm {
  const T* dout;
  const T* in;
  const float* rrms;
  int64_t C;
  __device__ void operator()(int64_t r, int64_t c, float (&acc)[1]) const {
    acc[0] += to_float(dout[r * C + c]) * to_float(in[r * C + c]) * rrms[r];
  }
};

// dg += Σ_rows dout·x·ρ.
template <class T>
__global__ void rmsnorm_param_grad_kernel(T* dg, const T* dout, const T* in, const float* rrms, int64_t rows,
                                          int64_t C) {
  const int64_t c = blockIdx.x * int64_t(32) + threadIdx.x;
  float sums[1];
  detail::reduce_columns<1>(rows, C, c, RmsNormParamGradTerm<T>{dout, in, rrms, C}, sums);
  if (threadIdx.y == 0 && c < C) dg[c] = from_float<T>(to_float(dg[c]) + sums[0]);
}

}  // namespace

template <class T>
void rmsnorm_forward(T* out, float* rrms, const T* in, const T* g, int64_t rows, int64_t C, float eps,
                     cudaStream_t stream) {
  if (rows == 0 || C == 0) return;
  rmsnorm_forward_kernel<T><<<detail::grid_for_rows(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream>>>(
      out, rrms, in, g, rows, static_cast<int>(C), eps);
  cudaCheckLaunch();
}

template <class T>
void rmsnorm_backward(T* din, T* dg, const T* dout, const T* in, const float* rrms, const T* g, int64_t rows,
                      int64_t C, bool accumulate_din, cudaStream_t stream) {
  if (rows == 0 || C == 0) return;
  if (din != nullptr) {
    rmsnorm_input_grad_kernel<T><<<detail::grid_for_rows(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream>>>(
        din, dout, in, rrms, g, rows, static_cast<int>(C), accumulate_din);
    cudaCheckLaunch();
  }
  if (dg == nullptr) return;
  rmsnorm_param_grad_kernel<T><<<detail::column_grid(C), detail::column_block(), 0, stream>>>(dg, dout, in, rrms,
                                                                                               rows, C);
  cudaCheckLaunch();
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int64_t, int64_t, float,
                                     cudaStream_t);
template void rmsnorm_forward<bf16>(bf16*, float*, const bf16*, const bf16*, int64_t, int64_t, float, cudaStream_t);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*, const float*, int64_t,
                                      int64_t, bool, cudaStream_t);
template void rmsnorm_backward<bf16>(bf16*, bf16*, const bf16*, const bf16*, const float*, const bf16*, int64_t,
                                     int64_t, bool, cudaStream_t);

}  // namespace starflow::core::cuda
