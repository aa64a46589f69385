// GQA head repetition on the CPU: row by row, copies and group sums in a fixed order (thread-count
// independent).
#include "core/ops/cpu/kv_heads.h"

#include <algorithm>

namespace starflow::core::cpu {

template <class T>
void expand_kv_heads(T* out, const T* in, int64_t rows, int64_t q_heads, int64_t kv_heads, int64_t head_dim) {
  const int64_t Q = q_heads * head_dim, KV = kv_heads * head_dim, g = q_heads / kv_heads;
#pragma omp parallel for schedule(static) if (rows * 3 * Q > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const T* src = in + r * (Q + 2 * KV);
    T* dst = out + r * 3 * Q;
    std::copy_n(src, Q, dst);
    for (int part = 1; part <= 2; ++part)
      for (int64_t h = 0; h < q_heads; ++h)
        std::copy_n(src + Q + (part - 1) * KV + (h / g) * head_dim, head_dim, dst + part * Q + h * head_dim);
  }
}

template <class T>
void reduce_kv_heads(T* din, const T* dout, int64_t rows, int64_t q_heads, int64_t kv_heads, int64_t head_dim) {
  const int64_t Q = q_heads * head_dim, KV = kv_heads * head_dim, g = q_heads / kv_heads;
#pragma omp parallel for schedule(static) if (rows * 3 * Q > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const T* src = dout + r * 3 * Q;
    T* dst = din + r * (Q + 2 * KV);
    std::copy_n(src, Q, dst);
    for (int part = 1; part <= 2; ++part)
      for (int64_t j = 0; j < kv_heads; ++j) {
        T* d = dst + Q + (part - 1) * KV + j * head_dim;
        std::copy_n(src + part * Q + j * g * head_dim, head_dim, d);
        for (int64_t h = j * g + 1; h < (j + 1) * g; ++h)
          for (int64_t i = 0; i < head_dim; ++i) d[i] += src[part * Q + h * head_dim + i];
      }
  }
}

template void expand_kv_heads<float>(float*, const float*, int64_t, int64_t, int64_t, int64_t);
template void expand_kv_heads<double>(double*, const double*, int64_t, int64_t, int64_t, int64_t);
template void reduce_kv_heads<float>(float*, const float*, int64_t, int64_t, int64_t, int64_t);
template void reduce_kv_heads<double>(double*, const double*, int64_t, int64_t, int64_t, int64_t);

}  // namespace starflow::core::cpu
