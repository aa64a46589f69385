// Row-major GEMM for the CPU backend: C = alpha·op(A)·op(B) + beta·C, float and double.
// Three implementations: OpenBLAS (cblas), oneDNN (dnnl_sgemm: JIT kernels for the host's widest ISA) and
// Eigen. `starflow bench gemm` measures them in one run (BENCHMARKS.md): the default is oneDNN for float on
// hosts with AVX-512 (where this environment's OpenBLAS runs AVX2 kernels) and OpenBLAS otherwise;
// STARFLOW_GEMM=openblas|onednn|eigen chooses. Double always goes to OpenBLAS (oneDNN has no dgemm) unless
// Eigen is chosen.
#pragma once
#include <cstdint>

namespace starflow::core::cpu {

enum class GemmBackend { openblas, onednn, eigen };
void set_gemm_backend(GemmBackend backend);
GemmBackend gemm_backend();
const char* gemm_backend_name(GemmBackend backend);

// op(A) is M×K, op(B) is K×N, C is M×N; all row-major with leading dimensions lda, ldb, ldc.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace starflow::core::cpu
