// CPU cached attention: one (batch, head) pair per OpenMP task; scores in a small per-task buffer.
#include "core/ops/cpu/attention_cached.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace starflow::core::cpu {

template <class T>
void attention_cached_forward(T* out, KVCache<T>& cache, const T* qkv, int64_t B, int64_t n, int64_t start, T scale) {
  const int64_t H = cache.n_head, dh = cache.head_dim, C = H * dh, cap = cache.capacity;
  if (start + n > cap || B > cache.batch) throw std::out_of_range("attention_cached_forward: KV cache too small");
#pragma omp parallel for collapse(2) schedule(static) if (B * H * n * (start + n) * dh > 32768)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      T* K = cache.k.data() + ((b * H + h) * cap) * dh;
      T* V = cache.v.data() + ((b * H + h) * cap) * dh;
      for (int64_t i = 0; i < n; ++i) {
        const T* row = qkv + (b * n + i) * 3 * C;
        std::memcpy(K + (start + i) * dh, row + C + h * dh, sizeof(T) * dh);
        std::memcpy(V + (start + i) * dh, row + 2 * C + h * dh, sizeof(T) * dh);
      }
      std::vector<T> p(static_cast<size_t>(start + n));
      for (int64_t i = 0; i < n; ++i) {
        const T* q = qkv + (b * n + i) * 3 * C + h * dh;
        const int64_t keys = start + i + 1;
        T mx = -INFINITY;
        for (int64_t j = 0; j < keys; ++j) {
          const T* kj = K + j * dh;
          T s = 0;
          for (int64_t d = 0; d < dh; ++d) s += q[d] * kj[d];
          p[j] = s * scale;
          mx = std::max(mx, p[j]);
        }
        T sum = 0;
        for (int64_t j = 0; j < keys; ++j) sum += (p[j] = std::exp(p[j] - mx));
        const T inv = T(1) / sum;
        T* o = out + (b * n + i) * C + h * dh;
        std::fill(o, o + dh, T(0));
        for (int64_t j = 0; j < keys; ++j) {
          const T w = p[j] * inv;
          const T* vj = V + j * dh;
          for (int64_t d = 0; d < dh; ++d) o[d] += w * vj[d];
        }
      }
    }
}

template void attention_cached_forward<float>(float*, KVCache<float>&, const float*, int64_t, int64_t, int64_t, float);
template void attention_cached_forward<double>(double*, KVCache<double>&, const double*, int64_t, int64_t, int64_t,
                                               double);

}  // namespace starflow::core::cpu
