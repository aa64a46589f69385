// Shared by the GPU test files of starflow_cuda_ops_tests (its main() is in test_cuda_ops.cpp).
#pragma once
#include <cstdlib>
#include <string>

namespace starflow::core::cuda {

// Why the GPU tests skip; empty when a GPU is usable (set by main() before the tests run).
extern std::string g_no_gpu;

// The golden fixtures: $STARFLOW_GOLDEN_DIR when set (a GPU machine runs the binary outside the tree it was built
// in: tools/gpu-check.sh sets it), else the build's tests/golden/data.
inline std::string golden_dir() {
  const char* env = std::getenv("STARFLOW_GOLDEN_DIR");
  return env && *env ? env : STARFLOW_GOLDEN_DIR;
}

}  // namespace starflow::core::cuda
