// T5 RMSNorm kernels: one warp per row for the forward pass and the input gradient, the deterministic column
// reduction for dw (as rmsnorm.cu, with the gain w in place of 1 + g).
#include "core/ops/cuda/rmsnorm_gain.h"

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
__global__ void rmsnorm_gain_forward_kernel(T* out, float* rrms, const T* in, const T* w, int64_t rows, int C,
                                            float eps) {
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
  for (int j = lane; j < C; j += 32) y[j] = from_float<T>(to_float(w[j]) * (to_float(x[j]) * rr));
}

// With d = dout ⊙ w and ρ = rrms: din = ρ·d − ρ³·x·mean(d ⊙ x).
template <class T>
__global__ void rmsnorm_gain_input_grad_kernel(T* din, const T* dout, const T* in, const float* rrms, const T* w,
                                               int64_t rows, int C, bool accumulate) {
  const int64_t row = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const T* x = in + row * C;
  const T* dy = dout + row * C;
  float dot = 0.0f;
  for (int j = lane; j < C; j += 32) dot += to_float(dy[j]) * to_float(w[j]) * to_float(x[j]);
  const float rr = rrms[row];
  const float coef = rr * rr * rr * warp_sum(dot) / C;
  T* dx = din + row * C;
  for (int j = lane; j < C; j += 32) {
    const float value = rr * to_float(dy[j]) * to_float(w[j]) - coef * to_float(x[j]);
    dx[j] = from_float<T>(accumulate ? to_float(dx[j]) + value : value);
  }
}

template <class T>
struct GainGradTerm {
  const T* dout;
  const T* in;
  const float* rrms;
  int64_t C;
  __device__ void operator()(int64_t r, int64_t c, float (&acc)[1]) const {
    acc[0] += to_float(dout[r * C + c]) * to_float(in[r * C + c]) * rrms[r];
  }
};

// dw += Σ_rows dout·x·ρ.
template <class T>
__global__ void rmsnorm_gain_param_grad_kernel(T* dw, const T* dout, const T* in, const float* rrms, int64_t rows,
                                               int64_t C) {
  const int64_t c = blockIdx.x * int64_t(32) + threadIdx.x;
  float sums[1];
  detail::reduce_columns<1>(rows, C, c, GainGradTerm<T>{dout, in, rrms, C}, sums);
  if (threadIdx.y == 0 && c < C) dw[c] = from_float<T>(to_float(dw[c]) + sums[0]);
}

}  // namespace

template <class T>
void rmsnorm_gain_forward(T* out, float* rrms, const T* in, const T* w, int64_t rows, int64_t C, float eps,
                          cudaStream_t stream) {
  if (rows == 0 || C == 0) return;
  rmsnorm_gain_forward_kernel<T><<<detail::grid_for_rows(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream>>>(
      out, rrms, in, w, rows, static_cast<int>(C), eps);
  cudaCheckLaunch();
}

template <class T>
void rmsnorm_gain_backward(T* din, T* dw, const T* dout, const T* in, const float* rrms, const T* w, int64_t rows,
                           int64_t C, bool accumulate_din, cudaStream_t stream) {
  if (rows == 0 || C == 0) return;
  if (din != nullptr) {
    rmsnorm_gain_input_grad_kernel<T>
        <<<detail::grid_for_rows(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream>>>(
            din, dout, in, rrms, w, rows, static_cast<int>(C), accumulate_din);
    cudaCheckLaunch();
  }
  if (dw == nullptr) return;
  rmsnorm_gain_param_grad_kernel<T><<<detail::column_grid(C), detail::column_block(), 0, stream>>>(dw, dout, in, rrms,
                                                                                                    rows, C);
  cudaCheckLaunch();
}

template void rmsnorm_gain_forward<float>(float*, float*, const float*, const float*, int64_t, int64_t, float,
                                          cudaStream_t);
template void rmsnorm_gain_forward<bf16>(bf16*, float*, const bf16*, const bf16*, int64_t, int64_t, float,
                                         cudaStream_t);
template void rmsnorm_gain_backward<float>(float*, float*, const float*, const float*, const float*, const float*,
                                           int64_t, int64_t, bool, cudaStream_t);
template void rmsnorm_gain_backward<bf16>(bf16*, bf16*, const bf16*, const bf16*, const float*, const bf16*, int64_t,
                                          int64_t, bool, cudaStream_t);

}  // namespace starflow::core::cuda
