// Embedding forward/backward on the CPU. The backward splits the columns, not the tokens, between threads: a
// repeated id then sums its rows in token order on one thread, so results do not depend on the thread count.
#include "core/ops/cpu/embedding.h"

#include <algorithm>
#include <cstring>

namespace starflow::core::cpu {

namespace {

constexpr int64_t kParallelElements = 32 * 1024;
constexpr int64_t kColumnBlock = 64;

}  // namespace

template <class T>
void embedding_forward(T* out, const int64_t* ids, const T* table, int64_t n, int64_t D) {
#pragma omp parallel for schedule(static) if (n * D > kParallelElements)
  for (int64_t i = 0; i < n; ++i) std::memcpy(out + i * D, table + ids[i] * D, sizeof(T) * D);
}

template <class T>
void embedding_backward(T* dtable, const T* dout, const int64_t* ids, int64_t n, int64_t D) {
  const int64_t blocks = (D + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) if (n * D > kParallelElements)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kColumnBlock, width = std::min(kColumnBlock, D - j0);
    for (int64_t i = 0; i < n; ++i) {
      T* dst = dtable + ids[i] * D + j0;
      const T* src = dout + i * D + j0;
      for (int64_t j = 0; j < width; ++j) dst[j] += src[j];
    }
  }
}

template void embedding_forward<float>(float*, const int64_t*, const float*, int64_t, int64_t);
template void embedding_forward<double>(double*, const int64_t*, const double*, int64_t, int64_t);
template void embedding_backward<float>(float*, const float*, const int64_t*, int64_t, int64_t);
template void embedding_backward<double>(double*, const double*, const int64_t*, int64_t, int64_t);

}  // namespace starflow::core::cpu
