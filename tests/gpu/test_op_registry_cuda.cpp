// The op registry's CUDA mode (tests/ops/op_cases.h): every case the CUDA backend implements, forward and
// backward, on CudaBackend<float> against CpuBackend<float> on the same inputs. The cases are the calls the
// model makes through its backend, so this checks the backend's wiring (argument order, strides, in-place
// updates) as well as the kernels test_cuda_ops.cpp checks one by one. Skipped without a GPU.
#include <gtest/gtest.h>

#include "core/backends/cuda/cuda_backend.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/ops/op_checks.h"

namespace starflow::core::cuda {
namespace {

using starflow::tests::ops::AllCases;
using starflow::tests::ops::CaseList;

template <class Case>
void check_case(int& checked) {
  if constexpr (!Case::kCpuOnly) {
    const CudaBackend<float> gpu;
    const CpuBackend<float> cpu;
    EXPECT_TRUE((starflow::tests::ops::compare_backends<Case>(gpu, cpu, "cuda vs cpu"))) << Case::kName;
    ++checked;
  }
}

template <class... Cases>
void each_case(CaseList<Cases...>, int& checked) {
  (check_case<Cases>(checked), ...);
}

TEST(CudaOpRegistry, EveryCaseAgainstTheCpu) {
  if (!g_no_gpu.empty()) GTEST_SKIP() << g_no_gpu;
  int checked = 0;
  each_case(AllCases{}, checked);
  EXPECT_EQ(checked, 16);  // the 21 cases less the autoencoders' five image ops (CPU only until their CUDA ops exist)
}

}  // namespace
}  // namespace starflow::core::cuda
