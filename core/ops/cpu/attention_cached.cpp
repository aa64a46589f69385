// CPU cached attention. Decoding runs it once per token and layer with a single query per (batch, head),
// so per-call overhead matters more than FLOPs: scores live on the stack, the loops are plain dot
// products over contiguous head vectors, and threads start once a call has ~2^15 multiply-adds (one
// decode token of a 16-sample batch has more).
#include "core/ops/cpu/attention_cached.h"
#include "core/ops/cpu/vector_math.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#ifdef STARFLOW_SMALL_BATCH_KERNEL
#include <immintrin.h>
#endif

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

#ifdef STARFLOW_SMALL_BATCH_KERNEL
namespace {

// Rotates one head vector in place by the angles of one table row (as rope_rotate does).
inline void rotate_head(float* v, const float* cos, const float* sin, int64_t dh) {
  for (int64_t m = 0; m < dh; m += 2) {
    const float x0 = v[m], x1 = v[m + 1];
    v[m] = x0 * cos[m] - x1 * sin[m];
    v[m + 1] = x1 * cos[m] + x0 * sin[m];
  }
}

// One query against `keys` cached keys of one (sample, head): scores in vectors of 32 keys (the transposed
// key rows are read 8 at a time past `keys`, up to the padded capacity; those lanes are ignored), softmax,
// then the weighted sum of value rows in chunks of 64 dimensions held in registers. Writes o[d·stride].
void attend_avx2(float* o, int64_t stride, const float* q, const float* Kt, const float* V, int64_t keys,
                 int64_t dh, int64_t cap, float scale, float* p) {
  const int64_t kp = (keys + 7) / 8 * 8;
  for (int64_t j0 = 0; j0 < kp; j0 += 32) {
    const int nv = static_cast<int>(std::min<int64_t>(4, (kp - j0) / 8));
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const float* row = Kt + j0;
    if (nv == 4) {
      for (int64_t d = 0; d < dh; ++d, row += cap) {
        const __m256 qd = _mm256_set1_ps(q[d] * scale);
        acc[0] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(row), acc[0]);
        acc[1] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(row + 8), acc[1]);
        acc[2] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(row + 16), acc[2]);
        acc[3] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(row + 24), acc[3]);
      }
    } else {
      for (int64_t d = 0; d < dh; ++d, row += cap) {
        const __m256 qd = _mm256_set1_ps(q[d] * scale);
        for (int c = 0; c < nv; ++c) acc[c] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(row + 8 * c), acc[c]);
      }
    }
    for (int c = 0; c < nv; ++c) _mm256_storeu_ps(p + j0 + 8 * c, acc[c]);
  }
  float mx = p[0];
  for (int64_t j = 1; j < keys; ++j) mx = std::max(mx, p[j]);
  const float inv = 1.f / exp_shifted_sum(p, keys, 1.f, mx);
  for (int64_t d0 = 0; d0 < dh; d0 += 64) {
    const int nv = static_cast<int>(std::min<int64_t>(8, (dh - d0) / 8));
    __m256 acc[8];
    for (int c = 0; c < 8; ++c) acc[c] = _mm256_setzero_ps();
    const float* vj = V + d0;
    if (nv == 8) {
      for (int64_t j = 0; j < keys; ++j, vj += dh) {
        const __m256 w = _mm256_set1_ps(p[j] * inv);
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) acc[c] = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 8 * c), acc[c]);
      }
    } else {
      for (int64_t j = 0; j < keys; ++j, vj += dh) {
        const __m256 w = _mm256_set1_ps(p[j] * inv);
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
                           float scale, const RopeTable<float>& rope) {
  const int64_t H = cache.n_head, dh = cache.head_dim, C = H * dh, cap = cache.capacity;
  const int64_t Mp = small_batch_padded_rows(B * n);
  if (start + n > cap || B > cache.batch || start + n > rope.rows)
    throw std::out_of_range("attention_cached_team: KV cache or RoPE table too small");
  thread_local std::vector<float> scores;
  if (scores.size() < static_cast<size_t>(cap)) scores.resize(cap);
  float* p = scores.data();
  // Head-major order: the two threads write disjoint rows of out_t (no false sharing on its lines).
#pragma omp for collapse(2) schedule(static)
  for (int64_t h = 0; h < H; ++h)
    for (int64_t b = 0; b < B; ++b) {
      float* Kt = cache.k.data() + ((b * H + h) * cap) * dh;
      float* V = cache.v.data() + ((b * H + h) * cap) * dh;
      for (int64_t i = 0; i < n; ++i) {
        float* row = qkv + (b * n + i) * 3 * C;
        const float* cos = rope.cos.data() + (start + i) * dh;
        const float* sin = rope.sin.data() + (start + i) * dh;
        rotate_head(row + h * dh, cos, sin, dh);
        rotate_head(row + C + h * dh, cos, sin, dh);
        for (int64_t d = 0; d < dh; ++d) Kt[d * cap + start + i] = row[C + h * dh + d];
        std::memcpy(V + (start + i) * dh, row + 2 * C + h * dh, sizeof(float) * dh);
      }
      for (int64_t i = 0; i < n; ++i)
        attend_avx2(out_t + h * dh * Mp + b * n + i, Mp, qkv + (b * n + i) * 3 * C + h * dh, Kt, V, start + i + 1, dh,
                    cap, scale, p);
    }
}
#endif

template void attention_cached_forward<float>(float*, KVCache<float>&, const float*, int64_t, int64_t, int64_t, float);
template void attention_cached_forward<double>(double*, KVCache<double>&, const double*, int64_t, int64_t, int64_t,
                                               double);

}  // namespace starflow::core::cpu
