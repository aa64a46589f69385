// Linear layer forward/backward on top of gemm: three GEMMs (out, dW, din) plus the bias broadcast and
// its column sum, which are bandwidth-bound loops kept here rather than in the BLAS.
#include "core/ops/cpu/linear.h"

#include <algorithm>
#include <type_traits>

#include "core/ops/cpu/gemm.h"
#include "core/ops/cpu/linear_small_batch.h"

namespace starflow::core::cpu {

namespace {

// Below this many elements the bias loops finish faster than an OpenMP fork/join.
constexpr int64_t kParallelElements = 32 * 1024;

// Columns summed together in one pass over the rows: a stack block of double accumulators that
// vectorises across columns, with a fixed summation order per column whatever the thread count, so
// results stay bit-identical between runs with different OMP_NUM_THREADS.
constexpr int64_t kColumnBlock = 64;

// dbias[j] += Σ_i dout[i, j].
template <class T>
void add_column_sums(T* dbias, const T* dout, int64_t M, int64_t N) {
  const int64_t blocks = (N + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) if (M * N > kParallelElements)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, N - j0);
    double acc[kColumnBlock] = {};
    for (int64_t i = 0; i < M; ++i) {
      const T* row = dout + i * N + j0;
      for (int64_t j = 0; j < width; ++j) acc[j] += static_cast<double>(row[j]);
    }
    for (int64_t j = 0; j < width; ++j) dbias[j0 + j] += static_cast<T>(acc[j]);
  }
}

}  // namespace

template <class T>
void linear_forward(T* out, const T* in, const T* weight, const T* bias, int64_t M, int64_t K, int64_t N) {
  if constexpr (std::is_same_v<T, float>) {
    if (M <= kSmallBatchRows) return linear_forward_small_batch(out, in, weight, bias, M, K, N);
  }
  // Seeding out with the bias and letting the GEMM accumulate (beta = 1) costs one write pass instead
  // of a GEMM pass plus a separate read-modify-write pass.
  if (bias != nullptr) {
#pragma omp parallel for schedule(static) if (M * N > kParallelElements)
    for (int64_t i = 0; i < M; ++i) std::copy(bias, bias + N, out + i * N);
  }
  gemm<T>(false, true, M, N, K, T(1), in, K, weight, K, bias != nullptr ? T(1) : T(0), out, N);
}

template <class T>
void linear_backward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight, int64_t M,
                     int64_t K, int64_t N, bool accumulate_din) {
  // dW [N, K] += doutᵀ [N, M] · in [M, K]
  // Skippable so that a pass wanting only the input gradient (score-based denoising) pays for one GEMM.
  if (dweight != nullptr) gemm<T>(true, false, N, K, M, T(1), dout, N, in, K, T(1), dweight, K);
  if (dbias != nullptr) add_column_sums(dbias, dout, M, N);
  // din [M, K] (+)= dout [M, N] · W [N, K]
  if (din != nullptr) gemm<T>(false, false, M, K, N, T(1), dout, N, weight, K, accumulate_din ? T(1) : T(0), din, K);
}

template void linear_forward<float>(float*, const float*, const float*, const float*, int64_t, int64_t, int64_t);
template void linear_forward<double>(double*, const double*, const double*, const double*, int64_t, int64_t,
                                     int64_t);
template void linear_backward<float>(float*, float*, float*, const float*, const float*, const float*, int64_t,
                                     int64_t, int64_t, bool);
template void linear_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                      int64_t, int64_t, int64_t, bool);

}  // namespace starflow::core::cpu
