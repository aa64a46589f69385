// Row-major GEMM behind one signature, with interchangeable engines (OpenBLAS, oneDNN, Eigen) so the
// benchmark can compare them in the same binary and the model code never names a BLAS.
#include "core/ops/cpu/gemm.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>

#include <Eigen/Core>
#include <atomic>
#include <type_traits>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "core/ops/cpu/cpu_isa.h"

namespace starflow::core::cpu {

namespace {

GemmBackend initial_backend() {
  const char* env = std::getenv("STARFLOW_GEMM");
  const std::string want = env != nullptr ? env : "";
  if (want == "openblas") return GemmBackend::openblas;
  if (want == "onednn") return GemmBackend::onednn;
  if (want == "eigen") return GemmBackend::eigen;
  if (!want.empty()) throw std::runtime_error("STARFLOW_GEMM=" + want + ": expected openblas, onednn or eigen");
  // Measured (BENCHMARKS.md, G3): on AVX-512 hosts oneDNN's kernels are ~1.9x this OpenBLAS's AVX2 ones.
  return use_avx512() ? GemmBackend::onednn : GemmBackend::openblas;
}

// Atomic so a benchmark flipping the backend cannot tear a read on another thread; relaxed is enough
// because the choice carries no data with it.
std::atomic<GemmBackend>& backend_slot() {
  static std::atomic<GemmBackend> slot{initial_backend()};
  return slot;
}

void onednn_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const dnnl_status_t status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb,
                                          beta, C, ldc);
  if (status != dnnl_success)
    throw std::runtime_error("dnnl_sgemm failed (status " + std::to_string(static_cast<int>(status)) + ")");
}

void onednn_gemm(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*, int64_t,
                 double, double*, int64_t) {
  throw std::logic_error("oneDNN has no double GEMM");  // unreachable: gemm() sends double to OpenBLAS
}

// C ← beta·C for an M×N block with row stride ldc. beta == 0 writes zeros without reading C: callers
// hand us freshly allocated outputs that may hold NaN, and 0·NaN would poison the result.
template <class T>
void scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  if (beta == T(1)) return;
  for (int64_t i = 0; i < M; ++i) {
    T* row = C + i * ldc;
    if (beta == T(0)) {
      for (int64_t j = 0; j < N; ++j) row[j] = T(0);
    } else {
      for (int64_t j = 0; j < N; ++j) row[j] *= beta;
    }
  }
}

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K),
              alpha, A, static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C,
              static_cast<blasint>(ldc));
}

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, double alpha,
               const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
               int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K),
              alpha, A, static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C,
              static_cast<blasint>(ldc));
}

template <class T>
using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstStridedMap = Eigen::Map<const RowMajorMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using StridedMap = Eigen::Map<RowMajorMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <class T>
void eigen_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  // Map the stored matrices (op() undone) and let transpose() pick the kernel's packing order; Eigen
  // folds the transposes into its GEMM rather than materialising them.
  const ConstStridedMap<T> a(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
  const ConstStridedMap<T> b(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
  StridedMap<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  scale_c(M, N, beta, C, ldc);
  // noalias: C never overlaps A or B here, so Eigen may accumulate straight into C without a temporary.
  if (!trans_a && !trans_b) c.noalias() += alpha * a * b;
  else if (!trans_a && trans_b) c.noalias() += alpha * a * b.transpose();
  else if (trans_a && !trans_b) c.noalias() += alpha * a.transpose() * b;
  else c.noalias() += alpha * a.transpose() * b.transpose();
}

}  // namespace

void set_gemm_backend(GemmBackend backend) { backend_slot().store(backend, std::memory_order_relaxed); }
GemmBackend gemm_backend() { return backend_slot().load(std::memory_order_relaxed); }

const char* gemm_backend_name(GemmBackend backend) {
  switch (backend) {
    case GemmBackend::openblas: return "OpenBLAS";
    case GemmBackend::onednn: return "oneDNN";
    case GemmBackend::eigen: return "Eigen";
  }
  return "?";
}

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  // An empty inner dimension is only a scaling of C; handling it here keeps both engines out of their
  // corner cases (cblas rejects lda < 1, Eigen would still be asked for a 0-deep product).
  if (K <= 0 || alpha == T(0)) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  const GemmBackend backend = gemm_backend();
  if (backend == GemmBackend::eigen) {
    eigen_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (backend == GemmBackend::onednn && std::is_same_v<T, float>) {
    onednn_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // OpenBLAS honours beta == 0 as "do not read C" (the BLAS reference semantics), so no pre-pass.
  blas_gemm(trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B,
            ldb, beta, C, ldc);
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                          int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t);

}  // namespace starflow::core::cpu
