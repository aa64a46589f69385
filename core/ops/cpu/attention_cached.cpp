// CPU cached attention. Decoding runs it once per token and layer with a single query per (batch, head),
// so per-call overhead matters more than FLOPs: scores live on the stack, the loops are plain dot
// products over contiguous head vectors, and threads start once a call has ~2^15 multiply-adds (one
// decode token of a 16-sample batch has more).
#include "core/ops/cpu/attention_cached.h"
#include "core/ops/cpu/vector_math.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace starflow::core::cpu {

namespace {
// Work (multiply-adds) below which one thread is faster than a fork/join. One decode token of config A
// (16 samples × 4 heads × ≤ 72 keys × 64) is ~2^18: measured 10–20% faster sequential sampling in parallel.
constexpr int64_t kParallelWork = 1 << 15;

template <class T>
void attend_one_head(T* __restrict o, const T* __restrict q, const T* __restrict Kt, const T* __restrict V,
                     int64_t keys, int64_t dh, int64_t cap, T scale, T* __restrict p) {
  for (int64_t j = 0; j < keys; ++j) p[j] = T(0);
  for (int64_t d = 0; d < dh; ++d) {
    const T qd = q[d] * scale;
    const T* __restrict row = Kt + d * cap;
#pragma omp simd
    for (int64_t j = 0; j < keys; ++j) p[j] += qd * row[j];
  }
  T mx = p[0];
  for (int64_t j = 1; j < keys; ++j) mx = std::max(mx, p[j]);
  const T inv = T(1) / exp_shifted_sum(p, keys, T(1), mx);
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
        T* Kt = cache.k.data() + ((b * H + h) * cap) * dh;
        T* V = cache.v.data() + ((b * H + h) * cap) * dh;
        for (int64_t i = 0; i < n; ++i) {
          const T* row = qkv + (b * n + i) * 3 * C;
          for (int64_t d = 0; d < dh; ++d) Kt[d * cap + start + i] = row[C + h * dh + d];
          std::memcpy(V + (start + i) * dh, row + 2 * C + h * dh, sizeof(T) * dh);
        }
        for (int64_t i = 0; i < n; ++i)
          attend_one_head(out + (b * n + i) * C + h * dh, qkv + (b * n + i) * 3 * C + h * dh, Kt, V, start + i + 1, dh,
                          cap, scale, scores.data());
      }
  }
}

template void attention_cached_forward<float>(float*, KVCache<float>&, const float*, int64_t, int64_t, int64_t, float);
template void attention_cached_forward<double>(double*, KVCache<double>&, const double*, int64_t, int64_t, int64_t,
                                               double);

}  // namespace starflow::core::cpu
