// The op registry's CPU modes (tests/ops/op_cases.h): every case's gradients against finite differences in
// double, float against double, and (AVX-512 hosts) the AVX-512 kernels against the AVX2 ones. The CUDA mode is tests/gpu/test_op_registry_cuda.cpp.
#include <gtest/gtest.h>

#include <type_traits>

#include "tests/ops/op_checks.h"

namespace starflow::tests::ops {
namespace {

template <class Case>
void check_case(int& count) {
  EXPECT_TRUE(check_gradients<Case>()) << Case::kName;
  EXPECT_TRUE(check_float_against_double<Case>()) << Case::kName;
  ++count;
}

template <class... Cases>
void each_case(CaseList<Cases...>, int& count) {
  (check_case<Cases>(count), ...);
}

TEST(OpRegistry, EveryCaseGradientsAndFloatAgainstDouble) {
  int count = 0;
  each_case(AllCases{}, count);
  EXPECT_EQ(count, 23);
}

#ifdef STARFLOW_AVX512_KERNELS
template <class Case>
void check_isa_twin(int& count) {
  EXPECT_TRUE(check_isa_twins<Case>()) << Case::kName;
  ++count;
}

template <class... Cases>
void each_isa_twin(CaseList<Cases...>, int& count) {
  (check_isa_twin<Cases>(count), ...);
}

TEST(OpRegistry, EveryCaseAvx512KernelsAgainstAvx2Kernels) {
  if (!core::cpu::host_has_avx512()) GTEST_SKIP() << "this host has no AVX-512";
  int count = 0;
  each_isa_twin(AllCases{}, count);
  EXPECT_EQ(count, 23);
}
#endif

// The checks can fail: a case whose backward is off by a factor is caught by the finite differences, and a
// float result that is not the double one by the comparison.
struct BrokenGelu : GeluCase {
  template <class B>
  static void backward(const B& be, OpTensors<B>& t) {
    be.gelu_backward(t.di(0), t.dO(0), t.i(0), N);
    be.axpy(t.di(0), 0.01, t.di(0), N);  // 1% too large
  }
};

struct FloatOnlyShift : GeluCase {
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.gelu_forward(t.o(0), t.i(0), N);
    if constexpr (std::is_same_v<typename B::Scalar, float>) be.axpy(t.o(0), 1e-3, t.i(0), N);
  }
};

struct Avx512OnlyShift : GeluCase {
  template <class B>
  static void forward(const B& be, OpTensors<B>& t) {
    be.gelu_forward(t.o(0), t.i(0), N);
    if (core::cpu::use_avx512()) be.axpy(t.o(0), 1e-5, t.i(0), N);
  }
};

TEST(OpRegistry, TheChecksCatchWrongOps) {
  EXPECT_FALSE(check_gradients<BrokenGelu>());
  EXPECT_FALSE(check_float_against_double<FloatOnlyShift>());
#ifdef STARFLOW_AVX512_KERNELS
  if (core::cpu::host_has_avx512()) {
    EXPECT_FALSE(check_isa_twins<Avx512OnlyShift>());
  }
#endif
}

}  // namespace
}  // namespace starflow::tests::ops
