// CPU cached attention. Decoding runs it once per token and layer with a single query per (batch, head),
// so per-call overhead and memory traffic matter more than FLOPs: keys and values are read as contiguous
// rows (a key's score is one dot product over the head dimension), scores live in a small per-thread
// buffer, and threads start once a call has ~2^15 multiply-adds (one decode token of a 16-sample batch has
// more).
#include "core/ops/cpu/attention_cached.h"
#include "core/ops/cpu/vector_math.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef STARFLOW_SMALL_BATCH_KERNEL
#include <immintrin.h>

#include "core/ops/cpu/cpu_isa.h"
#include "core/ops/cpu/rope_impl.h"
#include "core/ops/cpu/small_batch_avx512.h"
#endif

namespace starflow::core::cpu {

namespace {
// Work (multiply-adds) below which one thread is faster than a fork/join. One decode token of config A
// (16 samples × 4 heads × ≤ 72 keys × 64) is ~2^18: measured 10–20% faster sequential sampling in parallel.
constexpr int64_t kParallelWork = 1 << 15;

template <class T>
void attend_one_head(T* __restrict o, const T* __restrict q, const T* __restrict K, const T* __restrict V,
                     int64_t keys, int64_t dh, T scale, T* __restrict p) {
  for (int64_t j = 0; j < keys; ++j) {
    const T* __restrict kj = K + j * dh;
    T s = T(0);
#pragma omp simd reduction(+ : s)
    for (int64_t d = 0; d < dh; ++d) s += (q[d] * scale) * kj[d];
    p[j] = s;
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

// K and V rows of sample b, KV head h at positions start..start+n−1 (Hq query heads before the keys).
template <class T>
void store_head(KVCache<T>& cache, const T* qkv, int64_t b, int64_t h, int64_t n, int64_t start, int64_t Hq) {
  const int64_t H = cache.n_head, dh = cache.head_dim, cap = cache.capacity, row_len = (Hq + 2 * H) * dh;
  T* K = cache.k.data() + ((b * H + h) * cap) * dh;
  T* V = cache.v.data() + ((b * H + h) * cap) * dh;
  for (int64_t i = 0; i < n; ++i) {
    const T* row = qkv + (b * n + i) * row_len;
    std::memcpy(K + (start + i) * dh, row + (Hq + h) * dh, sizeof(T) * dh);
    std::memcpy(V + (start + i) * dh, row + (Hq + H + h) * dh, sizeof(T) * dh);
  }
}

template <class T>
void store_head(KVCache<T>& cache, const T* qkv, int64_t b, int64_t h, int64_t n, int64_t start) {
  store_head(cache, qkv, b, h, n, start, cache.n_head);
}

int64_t query_heads(int64_t q_heads, int64_t kv_heads) {
  const int64_t Hq = q_heads > 0 ? q_heads : kv_heads;
  if (Hq % kv_heads != 0)
    throw std::invalid_argument("cached attention: " + std::to_string(Hq) + " query heads are not a multiple of " +
                                std::to_string(kv_heads) + " KV heads");
  return Hq;
}

}  // namespace

template <class T>
void attention_cached_store(KVCache<T>& cache, const T* qkv, int64_t B, int64_t n, int64_t start, int64_t q_heads) {
  if (start + n > cache.capacity || B > cache.batch) throw std::out_of_range("attention_cached_store: KV cache too small");
  const int64_t Hq = query_heads(q_heads, cache.n_head);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < cache.n_head; ++h) store_head(cache, qkv, b, h, n, start, Hq);
}

template <class T>
void attention_cached_forward(T* out, KVCache<T>& cache, const T* qkv, int64_t B, int64_t n, int64_t start, T scale,
                              int64_t q_heads) {
  const int64_t H = cache.n_head, dh = cache.head_dim, cap = cache.capacity;
  if (start + n > cap || B > cache.batch) throw std::out_of_range("attention_cached_forward: KV cache too small");
  const int64_t Hq = query_heads(q_heads, H), group = Hq / H, C = Hq * dh, row_len = (Hq + 2 * H) * dh;
  const int64_t work = B * Hq * n * (start + n) * dh;
#pragma omp parallel if (work > kParallelWork)
  {
    std::vector<T> scores(static_cast<size_t>(start + n));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        store_head(cache, qkv, b, h, n, start, Hq);
        const T* K = cache.k.data() + ((b * H + h) * cap) * dh;
        const T* V = cache.v.data() + ((b * H + h) * cap) * dh;
        for (int64_t hq = h * group; hq < (h + 1) * group; ++hq)
          for (int64_t i = 0; i < n; ++i)
            attend_one_head(out + (b * n + i) * C + hq * dh, qkv + (b * n + i) * row_len + hq * dh, K, V, start + i + 1,
                            dh, scale, scores.data());
      }
  }
}

#ifdef STARFLOW_SMALL_BATCH_KERNEL
namespace {

constexpr int64_t kPrefetchFloats = 16 * 64;  // per K and V block: 4 KB, the first 16 keys of 64 dims

// Rotates one head vector in place by the angles of one table row (as rope_rotate does).
inline void rotate_head(float* v, const float* cos, const float* sin, int64_t dh) {
  for (int64_t m = 0; m < dh; m += 2) {
    const float x0 = v[m], x1 = v[m + 1];
    v[m] = x0 * cos[m] - x1 * sin[m];
    v[m + 1] = x1 * cos[m] + x0 * sin[m];
  }
}

// Sum of each of four vectors' lanes, as one vector's lanes 0..3.
inline __m128 sum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);  // per 128-bit half: [a b c d] partial sums
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// One query against `keys` cached keys of one (sample, head), head_dim a multiple of 8: scores eight keys
// at a time (dot products over contiguous key rows), softmax, then the weighted sum of value rows in
// chunks of 64 dimensions held in registers. Writes o[d·stride]. qs: scratch for the scaled query.
void attend_avx2(float* o, int64_t stride, const float* q, const float* K, const float* V, int64_t keys,
                 int64_t dh, float scale, float* p, float* qs) {
  for (int64_t d = 0; d < dh; ++d) qs[d] = q[d] * scale;
  int64_t j = 0;
  // Eight keys at a time: eight independent FMA chains cover the FMA latency (2 per cycle × 4 cycles).
  for (; j + 8 <= keys; j += 8) {
    __m256 a[8];
    for (int c = 0; c < 8; ++c) a[c] = _mm256_setzero_ps();
    const float* k0 = K + j * dh;
    for (int64_t d = 0; d < dh; d += 8) {
      const __m256 qv = _mm256_loadu_ps(qs + d);
#pragma GCC unroll 8
      for (int c = 0; c < 8; ++c) a[c] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + c * dh + d), a[c]);
    }
    _mm_storeu_ps(p + j, sum4(a[0], a[1], a[2], a[3]));
    _mm_storeu_ps(p + j + 4, sum4(a[4], a[5], a[6], a[7]));
  }
  for (; j + 4 <= keys; j += 4) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const float* k0 = K + j * dh;
    for (int64_t d = 0; d < dh; d += 8) {
      const __m256 qv = _mm256_loadu_ps(qs + d);
      a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + d), a0);
      a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + dh + d), a1);
      a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 2 * dh + d), a2);
      a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 3 * dh + d), a3);
    }
    _mm_storeu_ps(p + j, sum4(a0, a1, a2, a3));
  }
  for (; j < keys; ++j) {
    __m256 a = _mm256_setzero_ps();
    for (int64_t d = 0; d < dh; d += 8)
      a = _mm256_fmadd_ps(_mm256_loadu_ps(qs + d), _mm256_loadu_ps(K + j * dh + d), a);
    p[j] = _mm_cvtss_f32(sum4(a, a, a, a));  // every lane holds a's total
  }
  float mx = p[0];
  for (int64_t i = 1; i < keys; ++i) mx = std::max(mx, p[i]);
  const float inv = 1.f / exp_shifted_sum(p, keys, 1.f, mx);
  for (int64_t d0 = 0; d0 < dh; d0 += 64) {
    const int nv = static_cast<int>(std::min<int64_t>(8, (dh - d0) / 8));
    __m256 acc[8];
    for (int c = 0; c < 8; ++c) acc[c] = _mm256_setzero_ps();
    const float* vj = V + d0;
    if (nv == 8) {
      for (int64_t i = 0; i < keys; ++i, vj += dh) {
        const __m256 w = _mm256_set1_ps(p[i] * inv);
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) acc[c] = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 8 * c), acc[c]);
      }
    } else {
      for (int64_t i = 0; i < keys; ++i, vj += dh) {
        const __m256 w = _mm256_set1_ps(p[i] * inv);
        for (int c = 0; c < nv; ++c) acc[c] = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 8 * c), acc[c]);
      }
    }
    alignas(32) float buf[64];
    for (int c = 0; c < nv; ++c) _mm256_store_ps(buf + 8 * c, acc[c]);
    for (int64_t d = 0; d < 8 * nv; ++d) o[(d0 + d) * stride] = buf[d];
  }
}

}  // namespace

void attention_cached_team(float* out_t, KVCache<float>& cache, float* qkv, int64_t B, int64_t n, int64_t start,
                           float scale, const RopeTable<float>& rope, int64_t q_heads) {
  const int64_t H = cache.n_head, dh = cache.head_dim, cap = cache.capacity, Hq = query_heads(q_heads, H);
  const int64_t group = Hq / H, row_len = (Hq + 2 * H) * dh, k_at = Hq * dh;
  const int64_t Mp = small_batch_padded_rows(B * n);
  if (start + n > cap || B > cache.batch || start + n > rope.rows)
    throw std::out_of_range("attention_cached_team: KV cache or RoPE table too small");
  thread_local std::vector<float> scratch;  // scores, then the scaled query
  if (scratch.size() < static_cast<size_t>(cap + dh)) scratch.resize(cap + dh);
  float* p = scratch.data();
  float* qs = p + cap;
  const bool wide = use_avx512() && dh % 16 == 0;  // the AVX-512 form (attention_cached_avx512.cpp)
  auto rotate = [&](float* v, int64_t i) {
    const float* cos = rope.cos.data() + (start + i) * dh;
    const float* sin = rope.sin.data() + (start + i) * dh;
    if (rope.half_split) rope_rotate_head<float, true>(v, cos, sin, dh / 2, 1.f);
    else rotate_head(v, cos, sin, dh);
  };
  // One work item per (KV head, sample): its key head is rotated and stored, then the query heads that read
  // it attend. Head-major order: the two threads write disjoint rows of out_t (no false sharing on its lines).
#pragma omp for collapse(2) schedule(static)
  for (int64_t g = 0; g < H; ++g)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < n; ++i) {
        float* row = qkv + (b * n + i) * row_len;
        for (int64_t h = g * group; h < (g + 1) * group; ++h) rotate(row + h * dh, i);
        rotate(row + k_at + g * dh, i);
      }
      store_head(cache, qkv, b, g, n, start, Hq);
      const float* K = cache.k.data() + ((b * H + g) * cap) * dh;
      const float* V = cache.v.data() + ((b * H + g) * cap) * dh;
      if (b + 1 < B) {  // the next sample's rows of this head: start their fetch while this one computes
        const float* K1 = cache.k.data() + (((b + 1) * H + g) * cap) * dh;
        const float* V1 = cache.v.data() + (((b + 1) * H + g) * cap) * dh;
        const int64_t bytes = std::min<int64_t>((start + n) * dh, kPrefetchFloats) * int64_t(sizeof(float));
        for (int64_t off = 0; off < bytes; off += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(K1) + off, _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(V1) + off, _MM_HINT_T0);
        }
      }
      for (int64_t h = g * group; h < (g + 1) * group; ++h)
        for (int64_t i = 0; i < n; ++i) {
          float* o = out_t + h * dh * Mp + b * n + i;
          const float* q = qkv + (b * n + i) * row_len + h * dh;
          if (wide) avx512::attend(o, Mp, q, K, V, start + i + 1, dh, scale, p, qs);
          else attend_avx2(o, Mp, q, K, V, start + i + 1, dh, scale, p, qs);
        }
    }
}
#endif

template void attention_cached_store<float>(KVCache<float>&, const float*, int64_t, int64_t, int64_t, int64_t);
template void attention_cached_store<double>(KVCache<double>&, const double*, int64_t, int64_t, int64_t, int64_t);
template void attention_cached_forward<float>(float*, KVCache<float>&, const float*, int64_t, int64_t, int64_t, float,
                                              int64_t);
template void attention_cached_forward<double>(double*, KVCache<double>&, const double*, int64_t, int64_t, int64_t,
                                               double, int64_t);

}  // namespace starflow::core::cpu
