// cudaCheck / cublasCheck: every CUDA runtime, cuBLAS and cuBLASLt call of the CUDA ops is checked, and a
// failure becomes an exception naming the call, its site and the library's own error text (llm.c style).
// The one definition for the project: parallel/nccl_check.h includes it.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace starflow::core::cuda {

inline void cuda_check(cudaError_t code, const char* call, const char* file, int line) {
  if (code == cudaSuccess) return;
  throw std::runtime_error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                           cudaGetErrorName(code) + ": " + cudaGetErrorString(code));
}

inline void cublas_check(cublasStatus_t code, const char* call, const char* file, int line) {
  if (code == CUBLAS_STATUS_SUCCESS) return;
  throw std::runtime_error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                           cublasGetStatusName(code) + ": " + cublasGetStatusString(code));
}

}  // namespace starflow::core::cuda

#define cudaCheck(call) ::starflow::core::cuda::cuda_check((call), #call, __FILE__, __LINE__)
// cuBLAS and cuBLASLt share cublasStatus_t, so one macro checks both.
#define cublasCheck(call) ::starflow::core::cuda::cublas_check((call), #call, __FILE__, __LINE__)
// After a kernel launch: reports a bad launch configuration at its site (execution errors surface at the
// next synchronising call).
#define cudaCheckLaunch() cudaCheck(cudaGetLastError())
