// Device helpers shared by the CUDA op kernels: fp32 arithmetic on fp32 or bf16 storage, warp and block
// reductions, and grid sizing for grid-stride loops. Included by .cu files only.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace starflow::core::cuda::detail {

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Reductions over a 1-D block whose size is a multiple of 32; every thread gets the result. The leading
// barrier lets a block call them back to back (the partials of the previous call may still be being read).
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  return warp_sum(lane < warps ? partial[lane] : 0.0f);
}
__device__ __forceinline__ float block_max(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  return warp_max(lane < warps ? partial[lane] : -INFINITY);
}

// Blocks for a grid-stride loop over n items: enough to fill the GPU, never more than the items need.
inline unsigned grid_for(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, int64_t(1) << 16));
}

// Rows handled one per warp, `warps` warps per block.
inline unsigned grid_for_rows(int64_t rows, int warps) {
  return static_cast<unsigned>((rows + warps - 1) / warps);
}

}  // namespace starflow::core::cuda::detail

namespace starflow::core::cuda::detail {

// Deterministic column sums (parameter gradients of norms, bias gradients): a block of 32 × kColumnRows
// threads owns 32 columns; thread (x, y) adds rows y, y + kColumnRows, ... of column c through
// term(r, c, acc), then the kColumnRows partials are added in a fixed order. No atomics, so the result is
// the same on every run. Every thread of the block must call it (it synchronises); threads with
// threadIdx.y == 0 get the sums of their column.
constexpr int kColumnRows = 16;

template <int N, class Term>
__device__ void reduce_columns(int64_t rows, int64_t cols, int64_t c, const Term& term, float (&sums)[N]) {
  __shared__ float partial[N][kColumnRows][33];
  float acc[N];
  for (int i = 0; i < N; ++i) acc[i] = 0.0f;
  if (c < cols)
    for (int64_t r = threadIdx.y; r < rows; r += kColumnRows) term(r, c, acc);
  for (int i = 0; i < N; ++i) partial[i][threadIdx.y][threadIdx.x] = acc[i];
  __syncthreads();
  if (threadIdx.y == 0) {
    for (int i = 0; i < N; ++i) {
      float s = 0.0f;
      for (int y = 0; y < kColumnRows; ++y) s += partial[i][y][threadIdx.x];
      sums[i] = s;
    }
  }
}

inline dim3 column_block() { return dim3(32, kColumnRows); }
inline unsigned column_grid(int64_t cols) { return static_cast<unsigned>((cols + 31) / 32); }

}  // namespace starflow::core::cuda::detail
