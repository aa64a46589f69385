// cudaCheck / ncclCheck: every CUDA runtime and NCCL call is checked, and a failure becomes an exception
// naming the call, its site and the library's own error text (NCCL's last-error detail when it has one).
#pragma once
#include <cuda_runtime.h>
#include <nccl.h>

#include <stdexcept>
#include <string>

namespace starflow::parallel {

inline void cuda_check(cudaError_t code, const char* call, const char* file, int line) {
  if (code == cudaSuccess) return;
  throw std::runtime_error(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                           cudaGetErrorName(code) + ": " + cudaGetErrorString(code));
}

inline void nccl_check(ncclResult_t code, const char* call, const char* file, int line) {
  if (code == ncclSuccess) return;
  std::string message = std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                        ncclGetErrorString(code);
  const char* detail = ncclGetLastError(nullptr);
  if (detail && *detail) message += std::string(" (") + detail + ")";
  throw std::runtime_error(message);
}

}  // namespace starflow::parallel

#define cudaCheck(call) ::starflow::parallel::cuda_check((call), #call, __FILE__, __LINE__)
#define ncclCheck(call) ::starflow::parallel::nccl_check((call), #call, __FILE__, __LINE__)
