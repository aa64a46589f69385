// Exact (erf) GELU forward/backward for the CPU backend (the AVX-512 form: gelu_avx512.cpp); the tanh
// approximation would miss the golden tolerances. Compiled with -ffast-math (see CMakeLists.txt) so that erf and exp use glibc's vector
// versions.
#include "core/ops/cpu/gelu.h"

#include <algorithm>
#include <cmath>

#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>

#include "core/build_config.h"
#include "core/ops/cpu/cpu_isa.h"
#include "core/ops/cpu/small_batch_avx512.h"

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

// erf(in[i] / √2) for up to 8 values through Eigen's vectorised rational approximation (≤ 6 ulp, 3.2e-7
// absolute; 2.5× faster than glibc's vector erff here). Always a whole 8-lane packet, so every element
// takes the same path wherever a caller's range starts: results do not depend on how work is split.
using Lanes = Eigen::Array<float, 8, 1>;
inline Lanes erf_scaled8(const float* in, int64_t count) {
  Lanes x = Lanes::Zero();
  for (int64_t i = 0; i < count; ++i) x[i] = in[i];
  return (x * float(kInvSqrt2)).erf();
}

template <class T>
void gelu_forward_serial(T* out, const T* in, int64_t n) {
  const T inv_sqrt2 = static_cast<T>(kInvSqrt2);
  for (int64_t i = 0; i < n; ++i) {
    const T x = in[i];
    out[i] = T(0.5) * x * (T(1) + std::erf(x * inv_sqrt2));
  }
}

template <>
void gelu_forward_serial<float>(float* out, const float* in, int64_t n) {
#ifdef STARFLOW_AVX512_KERNELS
  if (use_avx512()) return avx512::gelu_forward(out, in, n);
#endif
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const Eigen::Map<const Lanes> x(in + i);
    Eigen::Map<Lanes>(out + i) = 0.5f * x * (1.f + (x * float(kInvSqrt2)).erf());
  }
  if (i < n) {  // the tail, padded to a whole packet
    Lanes x = Lanes::Zero();
    for (int64_t j = 0; i + j < n; ++j) x[j] = in[i + j];
    const Lanes y = 0.5f * x * (1.f + (x * float(kInvSqrt2)).erf());
    for (int64_t j = 0; i + j < n; ++j) out[i + j] = y[j];
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
void gelu_backward(T* din, const T* dout, const T* in, int64_t n);

template <>
void gelu_backward<float>(float* din, const float* dout, const float* in, int64_t n) {
  const float inv_sqrt2pi = float(kInvSqrt2Pi);
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > kParallelElements)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t begin = blk * kBlock, end = std::min(n, begin + kBlock);
    alignas(32) float cdf[kBlock];
#ifdef STARFLOW_AVX512_KERNELS
    if (use_avx512()) {
      avx512::gelu_backward(din + begin, dout + begin, in + begin, end - begin, cdf);
      continue;
    }
#endif
    for (int64_t i = begin; i < end; i += 8) {
      const Lanes e = erf_scaled8(in + i, std::min<int64_t>(8, end - i));
      for (int64_t j = 0; j < 8 && i + j < end; ++j) cdf[i - begin + j] = 0.5f * (1.f + e[j]);
    }
    for (int64_t i = begin; i < end; ++i) {
      const float x = in[i];
      const float pdf = inv_sqrt2pi * std::exp(-0.5f * x * x);
      din[i] = dout[i] * (cdf[i - begin] + x * pdf);
    }
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
