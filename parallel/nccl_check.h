// ncclCheck: every NCCL call is checked, and a failure becomes an exception naming the call, its site and
// NCCL's error text (with its last-error detail when it has one). CUDA runtime calls use core's cudaCheck.
#pragma once
#include <nccl.h>

#include <stdexcept>
#include <string>

#include "core/ops/cuda/cuda_check.h"

namespace starflow::parallel {

inline void nccl_check(ncclResult_t code, const char* call, const char* file, int line) {
  if (code == ncclSuccess) return;
  std::string message = std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                        ncclGetErrorString(code);
  const char* detail = ncclGetLastError(nullptr);
  if (detail && *detail) message += std::string(" (") + detail + ")";
  throw std::runtime_error(message);
}

}  // namespace starflow::parallel

#define ncclCheck(call) ::starflow::parallel::nccl_check((call), #call, __FILE__, __LINE__)
