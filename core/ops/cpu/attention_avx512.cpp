// The training attention's matrix kernel (attention.cpp's rows_times_matrix) on 16-lane vectors: passes of 32
// output columns (two vectors per row) and a last pass of 16. Each output element is still one accumulator lane
// summed over k in order with the same multiply-add, so the AVX2 kernel's bits. Compiled for AVX-512
// (CMakeLists.txt), reached only through cpu_isa(): nothing here but the entry point has external linkage.
#include "core/build_config.h"

#if defined(STARFLOW_AVX512_KERNELS) && defined(__AVX512F__)
#include <cstdint>

#include "core/ops/cpu/small_batch_avx512.h"

namespace starflow::core::cpu::avx512 {
namespace {

typedef float Vec16 __attribute__((vector_size(64)));
typedef float UnalignedVec16 __attribute__((vector_size(64), aligned(4), may_alias));
constexpr int64_t kLanes = 16;

// One pass of NV vectors (NV·16 columns from c0) for R rows: per k, R broadcasts, NV loads, R·NV FMAs.
template <int R, int NV>
inline void pass(float* __restrict out, int64_t ld_out, const float* __restrict coef, int64_t coef_row,
                 int64_t coef_k, const float* __restrict mat, int64_t ld_mat, int64_t k_begin, int64_t k_end,
                 int64_t c0) {
  Vec16 acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = Vec16{};
  for (int64_t k = k_begin; k < k_end; ++k) {
    Vec16 m[NV];
    for (int v = 0; v < NV; ++v) m[v] = *reinterpret_cast<const UnalignedVec16*>(mat + k * ld_mat + c0 + v * kLanes);
    for (int r = 0; r < R; ++r) {
      const float a = coef[r * coef_row + k * coef_k];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * m[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) *reinterpret_cast<UnalignedVec16*>(out + r * ld_out + c0 + v * kLanes) = acc[r][v];
}

template <int R>
inline void rows_times_matrix_r(float* out, int64_t ld_out, const float* coef, int64_t coef_row, int64_t coef_k,
                                const float* mat, int64_t ld_mat, int64_t k_begin, int64_t k_end, int64_t n_cols) {
  int64_t c0 = 0;
  for (; c0 + 2 * kLanes <= n_cols; c0 += 2 * kLanes)
    pass<R, 2>(out, ld_out, coef, coef_row, coef_k, mat, ld_mat, k_begin, k_end, c0);
  if (c0 < n_cols) pass<R, 1>(out, ld_out, coef, coef_row, coef_k, mat, ld_mat, k_begin, k_end, c0);
}

}  // namespace

void rows_times_matrix(int rows, float* out, int64_t ld_out, const float* coef, int64_t coef_row, int64_t coef_k,
                       const float* mat, int64_t ld_mat, int64_t k_begin, int64_t k_end, int64_t n_cols) {
  if (rows == 4) return rows_times_matrix_r<4>(out, ld_out, coef, coef_row, coef_k, mat, ld_mat, k_begin, k_end, n_cols);
  rows_times_matrix_r<1>(out, ld_out, coef, coef_row, coef_k, mat, ld_mat, k_begin, k_end, n_cols);
}

}  // namespace starflow::core::cpu::avx512
#endif
