// cuBLAS / cuBLASLt plumbing shared by the CUDA ops: the element types they take, this thread's library
// handles and cuBLASLt workspace on the current device, and one runner for GemmPlans (gemm_plan.h).
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "core/ops/cuda/gemm_plan.h"

namespace starflow::core::cuda {

using bf16 = __nv_bfloat16;

// The CUDA library type of each element type the ops are instantiated for (storage; arithmetic is fp32).
template <class T>
struct DataType;
template <>
struct DataType<float> {
  static constexpr cudaDataType_t value = CUDA_R_32F;
  static constexpr const char* name = "fp32";
};
template <>
struct DataType<bf16> {
  static constexpr cudaDataType_t value = CUDA_R_16BF;
  static constexpr const char* name = "bf16";
};

// Per (thread, device), created on first use and kept for the thread's lifetime. The cuBLASLt workspace is
// shared by every op this thread runs on this device: ops on two streams of one thread must not overlap.
cublasHandle_t cublas_handle();
cublasLtHandle_t cublaslt_handle();
struct Workspace {
  void* data = nullptr;
  size_t bytes = 0;
};
Workspace cublaslt_workspace();

// Runs every launch of plan as one cuBLAS strided-batched GEMM with fp32 accumulation (CUBLAS_COMPUTE_32F:
// no TF32 for fp32 data), A/B/C of element type T, on stream.
template <class T>
void run_gemm(const GemmPlan& plan, const T* A, const T* B, T* C, float alpha, float beta, cudaStream_t stream);

}  // namespace starflow::core::cuda
