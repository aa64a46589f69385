// Row-major GEMM for the CPU backend: C = alpha·op(A)·op(B) + beta·C, float and double.
// Two implementations, OpenBLAS (cblas) and Eigen; `starflow bench gemm` measures both and the faster
// one (OpenBLAS on AVX2, see BENCHMARKS.md) is the default.
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

enum class GemmBackend { openblas, eigen };
void set_gemm_backend(GemmBackend backend);
GemmBackend gemm_backend();

// op(A) is M×K, op(B) is K×N, C is M×N; all row-major with leading dimensions lda, ldb, ldc.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace starflow::core::cpu
