// The whole CUDA model against the golden fixtures: forward, losses, every gradient, sampling (sequential,
// Jacobi, guided) and denoising, in fp32 within the fixtures' float32 tolerances and in bf16 within the
// provisional bf16 bound (core/golden/golden_check.h). The same checker as the CPU model's, on CudaBackend.
// Skipped without a GPU (the binary then exits 77).
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "core/backends/cuda/cuda_golden.h"
#include "tests/gpu/gpu_test_util.h"

namespace starflow::core::cuda {
namespace {

class CudaModelGolden : public ::testing::TestWithParam<const char*> {};

void check(const std::string& fixture, golden::Precision precision) {
  if (!g_no_gpu.empty()) GTEST_SKIP() << g_no_gpu;
  const golden::Report report = golden::check_file_cuda(golden_dir() + "/" + fixture, precision);
  std::printf("# CudaModel %s %s\n%s", precision == golden::Precision::kFloat32 ? "fp32" : "bf16", fixture.c_str(),
              golden::format_report(report).c_str());
  for (const auto& g : report.groups)
    EXPECT_TRUE(g.pass()) << g.group << ": max rel " << g.max_rel << " abs " << g.max_abs << " > " << g.tolerance
                          << " (" << g.metric << "), worst " << g.worst;
}

TEST_P(CudaModelGolden, Fp32WithinTheFloat32Tolerances) { check(GetParam(), golden::Precision::kFloat32); }
TEST_P(CudaModelGolden, Bf16WithinTheBf16Bound) { check(GetParam(), golden::Precision::kBFloat16); }

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaModelGolden,
                         ::testing::Values("tiny_uncond.safetensors", "tiny_text.safetensors",
                                           "tiny_patch2.safetensors", "tiny_class.safetensors",
                                           // the official switches (golden README section 7)
                                           "tiny_options_a.safetensors", "tiny_options_b.safetensors",
                                           "tiny_options_nosos.safetensors", "tiny_options_condall.safetensors"),
                         [](const auto& info) {
                           std::string n = info.param;
                           return n.substr(0, n.find('.'));
                         });

}  // namespace
}  // namespace starflow::core::cuda
