// CPU cached attention. Decoding runs it once per token and layer with a single query per (batch, head),
// so per-call overhead matters more than FLOPs: scores live on the stack, the loops are plain dot
// products over contiguous head vectors, and threads start only for large chunks.
#include "core/ops/cpu/attention_cached.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace starflow::core::cpu {

namespace {
// Work (multiply-adds) below which one thread is faster than a fork/join.
constexpr int64_t kParallelWork = 1 << 20;

template <class T>
void attend_one_head(T* __restrict o, const T* __restrict q, const T* __restrict K, const T* __restrict V,
                     int64_t keys, int64_t dh, T scale, T* __restrict p) {
  T mx = -INFINITY;
  for (int64_t j = 0; j < keys; ++j) {
    const T* __restrict kj = K + j * dh;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t d = 0; d < dh; ++d) s += q[d] * kj[d];
    p[j] = s * scale;
    mx = std::max(mx, p[j]);
  }
  T sum = 0;
  for (int64_t j = 0; j < keys; ++j) sum += (p[j] = std::exp(p[j] - mx));
  const T inv = T(1) / sum;
  for (int64_t d = 0; d < dh; ++d) o[d] = T(0);
  for (int64_t j = 0; j < keys; ++j) {
    const T w = p[j] * inv;
    const T* __restrict vj = V + j * dh;
#pragma omp simd
    for (int64_t d = 0; d < dh; ++d) o[d] += w * vj[d];
  }
}
}  // namespace

template <class T>
void attention_cached_forward(T* out, KVCache<T>& cache, const T* qkv, int64_t B, int64_t n, int64_t start, T scale) {
  const int64_t H = cache.n_head, dh = cache.head_dim, C = H * dh, cap = cache.capacity;
  if (start + n > cap || B > cache.batch) throw std::out_of_range("attention_cached_forward: KV cache too small");
  const int64_t work = B * H * n * (start + n) * dh;
#pragma omp parallel if (work > kParallelWork)
  {
    std::vector<T> scores(static_cast<size_t>(start + n));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        T* K = cache.k.data() + ((b * H + h) * cap) * dh;
        T* V = cache.v.data() + ((b * H + h) * cap) * dh;
        for (int64_t i = 0; i < n; ++i) {
          const T* row = qkv + (b * n + i) * 3 * C;
          std::memcpy(K + (start + i) * dh, row + C + h * dh, sizeof(T) * dh);
          std::memcpy(V + (start + i) * dh, row + 2 * C + h * dh, sizeof(T) * dh);
        }
        for (int64_t i = 0; i < n; ++i)
          attend_one_head(out + (b * n + i) * C + h * dh, qkv + (b * n + i) * 3 * C + h * dh, K, V, start + i + 1, dh,
                          scale, scores.data());
      }
  }
}

template void attention_cached_forward<float>(float*, KVCache<float>&, const float*, int64_t, int64_t, int64_t, float);
template void attention_cached_forward<double>(double*, KVCache<double>&, const double*, int64_t, int64_t, int64_t,
                                               double);

}  // namespace starflow::core::cpu
