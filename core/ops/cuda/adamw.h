// Fused AdamW step on the GPU, exactly core::AdamW's arithmetic (torch.optim.AdamW: decoupled weight decay,
// bias-corrected moments): fp32 master parameters and moments, fp32 or bf16 gradients, and optionally a bf16
// copy of the updated parameters for a bf16 forward pass, all in one pass over memory.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/optim/adamw.h"

namespace starflow::core::cuda {

// params, m, v, grads: n elements each (offset the pointers for a ZeRO-1 shard). step: the optimiser step
// being taken, counted from 1 (core::AdamW increments its counter before updating, so pass its steps() after
// the increment). params_bf16: written with the updated parameters when not nullptr.
template <class G>
void adamw_update(float* params, float* m, float* v, const G* grads, int64_t n, const AdamWConfig& cfg, double lr,
                  int64_t step, __nv_bfloat16* params_bf16 = nullptr, cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
