// Exact (erf) GELU forward/backward for the CPU backend; the tanh approximation would miss the golden
// tolerances. Compiled with -ffast-math (see CMakeLists.txt) so that erf and exp use glibc's vector
// versions.
#include "core/ops/cpu/gelu.h"

#include <algorithm>
#include <cmath>

namespace starflow::core::cpu {

namespace {

// The vector erf costs ~1 ns per element: below ~32k elements a fork/join costs more than it saves.
constexpr int64_t kParallelElements = 32 * 1024;

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1/√(2π), the normal density's constant

}  // namespace

// The vector and scalar (remainder) erf/exp differ in the last bit, so work is split into fixed blocks:
// which element takes the scalar path must not depend on the thread count (bit-exact runs and resumes
// with any OMP_NUM_THREADS).
constexpr int64_t kBlock = 4096;

template <class T>
void gelu_forward_serial(T* out, const T* in, int64_t n) {
  const T inv_sqrt2 = static_cast<T>(kInvSqrt2);
  for (int64_t i = 0; i < n; ++i) {
    const T x = in[i];
    out[i] = T(0.5) * x * (T(1) + std::erf(x * inv_sqrt2));
  }
}

template <class T>
void gelu_forward(T* out, const T* in, int64_t n) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > kParallelElements)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t begin = blk * kBlock;
    gelu_forward_serial(out + begin, in + begin, std::min(n, begin + kBlock) - begin);
  }
}

template <class T>
void gelu_backward(T* din, const T* dout, const T* in, int64_t n) {
  const T inv_sqrt2 = static_cast<T>(kInvSqrt2);
  const T inv_sqrt2pi = static_cast<T>(kInvSqrt2Pi);
  // gelu'(x) = Φ(x) + x·φ(x): the normal CDF plus x times the normal density.
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > kParallelElements)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t end = std::min(n, (blk + 1) * kBlock);
    for (int64_t i = blk * kBlock; i < end; ++i) {
      const T x = in[i];
      const T cdf = T(0.5) * (T(1) + std::erf(x * inv_sqrt2));
      const T pdf = inv_sqrt2pi * std::exp(T(-0.5) * x * x);
      din[i] = dout[i] * (cdf + x * pdf);
    }
  }
}

template void gelu_forward_serial<float>(float*, const float*, int64_t);
template void gelu_forward_serial<double>(double*, const double*, int64_t);
template void gelu_forward<float>(float*, const float*, int64_t);
template void gelu_forward<double>(double*, const double*, int64_t);
template void gelu_backward<float>(float*, const float*, const float*, int64_t);
template void gelu_backward<double>(double*, const double*, const double*, int64_t);

}  // namespace starflow::core::cpu
