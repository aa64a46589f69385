// STARFlow rotary position embedding on the GPU: the cos/sin table the CPU code builds
// (core/ops/cpu/rope.h: rope_angles + make_rope_table<float>) copied to the device, and the same
// adjacent-pair rotation with the same arguments as cpu::rope_rotate plus the stream.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/ops/cpu/rope.h"
#include "core/ops/cuda/device_buffer.h"

namespace starflow::core::cuda {

// cos and sin [rows, head_dim] in fp32 whatever the activation type (the rotation is computed in fp32).
struct DeviceRopeTable {
  int64_t rows = 0, head_dim = 0;
  bool half_split = false;  // hf_style_rope: pairs (m, m + dh/2), as cpu::RopeTable
  DeviceBuffer<float> cos, sin;
};
DeviceRopeTable upload_rope_table(const cpu::RopeTable<float>& table);

// Rotates, in place, n_heads head vectors of every sequence row: x points at element 0 of head 0 of
// (batch 0, row 0); rows are row_stride apart, batches batch_stride apart; heads are contiguous. Row s uses
// table row (row_offset + s). inverse = rotate by −φ (the backward pass). Throws when the rows fall outside
// the table. For q and k inside a qkv buffer [B, S, 3C] call it once with n_heads = 2·nH.
template <class T>
void rope_rotate(T* x, int64_t batch, int64_t rows, int64_t batch_stride, int64_t row_stride, int64_t n_heads,
                 const DeviceRopeTable& table, int64_t row_offset, bool inverse, cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
