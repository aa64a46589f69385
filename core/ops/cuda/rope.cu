// RoPE rotation kernel: one thread per adjacent pair (x₀, x₁) ← (x₀c − x₁s, x₁c + x₀s), s negated for the
// inverse. The table's angles are duplicated in pairs, so entry 2m of a row drives pair m: (2m, 2m+1), or
// (m, m + dh/2) for a half-split (hf-style) table.
#include "core/ops/cuda/rope.h"

#include <stdexcept>
#include <string>

#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/kernel_util.cuh"

namespace starflow::core::cuda {
namespace {

using detail::from_float;
using detail::to_float;

template <class T>
__global__ void rope_rotate_kernel(T* x, int64_t batch, int64_t rows, int64_t batch_stride, int64_t row_stride,
                                   int64_t n_heads, int64_t head_dim, const float* cos_table, const float* sin_table,
                                   int64_t row_offset, float sign, bool half_split) {
  const int64_t half = head_dim / 2;
  const int64_t total = batch * rows * n_heads * half;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t pair = i % half, m = half_split ? pair : 2 * pair, partner = half_split ? half : 1;
    int64_t rest = i / half;
    const int64_t h = rest % n_heads;
    rest /= n_heads;
    const int64_t s = rest % rows;
    const int64_t b = rest / rows;
    T* v = x + b * batch_stride + s * row_stride + h * head_dim + m;
    const int64_t t = (row_offset + s) * head_dim + 2 * pair;
    const float c = cos_table[t], sn = sign * sin_table[t];
    const float x0 = to_float(v[0]), x1 = to_float(v[partner]);
    v[0] = from_float<T>(x0 * c - x1 * sn);
    v[partner] = from_float<T>(x1 * c + x0 * sn);
  }
}

}  // namespace

DeviceRopeTable upload_rope_table(const cpu::RopeTable<float>& table) {
  if (table.head_dim <= 0 || table.head_dim % 2 != 0 ||
      table.cos.size() != static_cast<size_t>(table.rows * table.head_dim) || table.sin.size() != table.cos.size())
    throw std::invalid_argument("upload_rope_table: a table of " + std::to_string(table.rows) + " rows × " +
                                std::to_string(table.head_dim) + " needs that many cos and sin values");
  DeviceRopeTable device;
  device.rows = table.rows;
  device.head_dim = table.head_dim;
  device.half_split = table.half_split;
  device.cos = DeviceBuffer<float>(std::span<const float>(table.cos));
  device.sin = DeviceBuffer<float>(std::span<const float>(table.sin));
  return device;
}

template <class T>
void rope_rotate(T* x, int64_t batch, int64_t rows, int64_t batch_stride, int64_t row_stride, int64_t n_heads,
                 const DeviceRopeTable& table, int64_t row_offset, bool inverse, cudaStream_t stream) {
  if (row_offset < 0 || row_offset + rows > table.rows)
    throw std::invalid_argument("rope_rotate: rows [" + std::to_string(row_offset) + ", " +
                                std::to_string(row_offset + rows) + ") outside a table of " +
                                std::to_string(table.rows) + " rows");
  const int64_t total = batch * rows * n_heads * (table.head_dim / 2);
  if (total == 0) return;
  rope_rotate_kernel<T><<<detail::grid_for(total, 256), 256, 0, stream>>>(
      x, batch, rows, batch_stride, row_stride, n_heads, table.head_dim, table.cos.data(), table.sin.data(),
      row_offset, inverse ? -1.0f : 1.0f, table.half_split);
  cudaCheckLaunch();
}

template void rope_rotate<float>(float*, int64_t, int64_t, int64_t, int64_t, int64_t, const DeviceRopeTable&, int64_t,
                                 bool, cudaStream_t);
template void rope_rotate<bf16>(bf16*, int64_t, int64_t, int64_t, int64_t, int64_t, const DeviceRopeTable&, int64_t,
                                bool, cudaStream_t);

}  // namespace starflow::core::cuda
