// The RoPE rotation's body, written once and compiled at two widths: included by rope.cpp (the build's baseline
// ISA) and rope_avx512.cpp (AVX-512). Everything here has internal linkage, so each file keeps its own copy
// compiled for its ISA (see core/ops/cpu/small_batch_avx512.h). The pair layout is a template argument so that
// the compiler sees constant strides and vectorises the pair loop (with a runtime stride it stayed scalar).
#pragma once
#include <cstdint>

namespace starflow::core::cpu {
namespace {  // NOLINT(build/namespaces): internal linkage per including file is the point (above)

// One head vector v [2·half]: pair m is (2m, 2m+1), or (m, m + half) with kHalfSplit; its angle is table entry
// 2m either way. sign = −1 rotates by −φ.
template <class T, bool kHalfSplit>
inline void rope_rotate_head(T* __restrict v, const T* __restrict cos, const T* __restrict sin, int64_t half,
                             T sign) {
  constexpr int64_t kStep = kHalfSplit ? 1 : 2;
  const int64_t partner = kHalfSplit ? half : 1;
#pragma omp simd
  for (int64_t pair = 0; pair < half; ++pair) {
    const int64_t m = pair * kStep;
    const T x0 = v[m], x1 = v[m + partner];
    const T c = cos[2 * pair], sn = sign * sin[2 * pair];
    v[m] = x0 * c - x1 * sn;
    v[m + partner] = x1 * c + x0 * sn;
  }
}

template <class T, bool kHalfSplit>
void rope_rotate_body(T* x, int64_t batch, int64_t rows, int64_t batch_stride, int64_t row_stride, int64_t n_heads,
                      const T* table_cos, const T* table_sin, int64_t dh, int64_t row_offset, bool inverse) {
  const T sign = inverse ? T(-1) : T(1);
  const int64_t half = dh / 2;
  // Cheap per element; threads only pay off on training-size buffers.
#pragma omp parallel for collapse(2) schedule(static) if (batch * rows * n_heads * dh > (1 << 16))
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t s = 0; s < rows; ++s) {
      const T* cos = table_cos + (row_offset + s) * dh;
      const T* sin = table_sin + (row_offset + s) * dh;
      T* row = x + b * batch_stride + s * row_stride;
      for (int64_t h = 0; h < n_heads; ++h) rope_rotate_head<T, kHalfSplit>(row + h * dh, cos, sin, half, sign);
    }
  }
}

}  // namespace
}  // namespace starflow::core::cpu
