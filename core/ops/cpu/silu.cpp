// SiLU forward/backward for the CPU backend (elementwise, OpenMP above a size where it pays). Compiled with
// -ffast-math (see CMakeLists.txt) so that exp uses glibc's vector version.
#include "core/ops/cpu/silu.h"

#include <algorithm>
#include <cmath>

namespace starflow::core::cpu {

namespace {

constexpr int64_t kParallelElements = 32 * 1024;

// Threads take whole blocks of this many elements. The vector exp and the scalar one that finishes a
// loop's tail can differ in the last bit, so where the tails fall must not depend on the thread count:
// with fixed blocks it does not, and results stay bit-identical for any OMP_NUM_THREADS.
constexpr int64_t kBlock = 4096;

// σ(x) = 1/(1 + e^−x) with the exponent capped: below x = −80 σ is < 2e−35 either way, and the cap keeps
// e^−x finite, so no inf/inf or 0·inf can turn a very negative input into NaN.
template <class T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(std::min(-x, T(80))));
}

}  // namespace

template <class T>
void silu_forward(T* out, const T* in, int64_t n) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > kParallelElements)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t end = std::min(n, (blk + 1) * kBlock);
    for (int64_t i = blk * kBlock; i < end; ++i) out[i] = in[i] * sigmoid(in[i]);
  }
}

template <class T>
void silu_backward(T* din, const T* dout, const T* in, int64_t n) {
  // silu'(x) = σ(x)·(1 + x·(1 − σ(x))).
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > kParallelElements)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t end = std::min(n, (blk + 1) * kBlock);
    for (int64_t i = blk * kBlock; i < end; ++i) {
      const T x = in[i], sig = sigmoid(x);
      din[i] = dout[i] * sig * (T(1) + x * (T(1) - sig));
    }
  }
}

template void silu_forward<float>(float*, const float*, int64_t);
template void silu_forward<double>(double*, const double*, int64_t);
template void silu_backward<float>(float*, const float*, const float*, int64_t);
template void silu_backward<double>(double*, const double*, const double*, int64_t);

}  // namespace starflow::core::cpu
