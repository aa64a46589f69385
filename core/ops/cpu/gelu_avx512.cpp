// The exact GELU's AVX-512 form (gelu.cpp holds the scheme): Eigen's vectorised erf on 16-lane packets instead
// of 8, the normal density's exp through libmvec's 16-lane variant. Same polynomial per element as the AVX2
// form; the backward's exp may round differently in the last bit. Compiled for AVX-512 with -ffast-math
// (CMakeLists.txt), reached only through cpu_isa(); nothing here may be left out of line for other files to
// share (tests/repo/check_avx512_objects.sh).
#include "core/build_config.h"

#if defined(STARFLOW_AVX512_KERNELS) && defined(__AVX512F__)
// GCC 12 reports the undefined pass-through operand of its own _mm512_min_ps/_mm512_max_ps (used by Eigen's
// erf) as maybe uninitialized: a known false positive of avx512fintrin.h.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <cmath>
#include <cstdint>

#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>

#include "core/ops/cpu/small_batch_avx512.h"

namespace starflow::core::cpu::avx512 {
namespace {

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;
using Lanes = Eigen::Array<float, 16, 1>;

// Up to 16 values, always computed as a whole packet (the path of an element does not depend on where a
// caller's range starts).
inline Lanes load_padded(const float* in, int64_t count) {
  Lanes x = Lanes::Zero();
  for (int64_t i = 0; i < count; ++i) x[i] = in[i];
  return x;
}

}  // namespace

void gelu_forward(float* out, const float* in, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const Eigen::Map<const Lanes> x(in + i);
    Eigen::Map<Lanes>(out + i) = 0.5f * x * (1.f + (x * kInvSqrt2).erf());
  }
  if (i < n) {
    const Lanes x = load_padded(in + i, n - i);
    const Lanes y = 0.5f * x * (1.f + (x * kInvSqrt2).erf());
    for (int64_t j = 0; i + j < n; ++j) out[i + j] = y[j];
  }
}

void gelu_backward(float* din, const float* dout, const float* in, int64_t n, float* cdf) {
  for (int64_t i = 0; i < n; i += 16) {
    const int64_t count = n - i < 16 ? n - i : 16;
    const Lanes e = (load_padded(in + i, count) * kInvSqrt2).erf();
    for (int64_t j = 0; j < count; ++j) cdf[i + j] = 0.5f * (1.f + e[j]);
  }
  for (int64_t i = 0; i < n; ++i) {
    const float x = in[i];
    din[i] = dout[i] * (cdf[i] + x * (kInvSqrt2Pi * std::exp(-0.5f * x * x)));
  }
}

}  // namespace starflow::core::cpu::avx512
#endif
