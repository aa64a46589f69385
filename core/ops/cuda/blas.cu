// cuBLAS handles per thread and device, and the strided-batched GEMM runner behind the attention op.
#include "core/ops/cuda/blas.h"

#include <climits>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "core/ops/cuda/cuda_check.h"

namespace starflow::core::cuda {
namespace {

// 32 MiB: what NVIDIA recommends for cuBLASLt on Hopper.
constexpr size_t kWorkspaceBytes = size_t(32) << 20;

struct DeviceHandles {
  cublasHandle_t blas = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;
};

// The handles are deliberately never destroyed: a thread_local destructor runs at thread or process exit,
// possibly after the CUDA runtime has torn the context down, and cublasDestroy would then fail or crash.
DeviceHandles& handles() {
  thread_local std::unordered_map<int, DeviceHandles> per_device;
  int device = 0;
  cudaCheck(cudaGetDevice(&device));
  return per_device[device];
}

int checked_int(int64_t value, const char* what) {
  if (value < 0 || value > INT_MAX)
    throw std::invalid_argument(std::string("run_gemm: ") + what + " = " + std::to_string(value) +
                                " does not fit cuBLAS's int");
  return static_cast<int>(value);
}

}  // namespace

cublasHandle_t cublas_handle() {
  DeviceHandles& h = handles();
  if (h.blas == nullptr) cublasCheck(cublasCreate(&h.blas));
  return h.blas;
}

cublasLtHandle_t cublaslt_handle() {
  DeviceHandles& h = handles();
  if (h.lt == nullptr) cublasCheck(cublasLtCreate(&h.lt));
  return h.lt;
}

Workspace cublaslt_workspace() {
  DeviceHandles& h = handles();
  if (h.workspace == nullptr) cudaCheck(cudaMalloc(&h.workspace, kWorkspaceBytes));
  return {h.workspace, kWorkspaceBytes};
}

template <class T>
void run_gemm(const GemmPlan& p, const T* A, const T* B, T* C, float alpha, float beta, cudaStream_t stream) {
  if (p.m == 0 || p.n == 0 || p.batch == 0 || p.launches == 0) return;
  cublasHandle_t handle = cublas_handle();
  cublasCheck(cublasSetStream(handle, stream));
  const cudaDataType_t type = DataType<T>::value;
  const int m = checked_int(p.m, "m"), n = checked_int(p.n, "n"), k = checked_int(p.k, "k");
  const int lda = checked_int(p.lda, "lda"), ldb = checked_int(p.ldb, "ldb"), ldc = checked_int(p.ldc, "ldc");
  const int batch = checked_int(p.batch, "batch");
  for (int64_t l = 0; l < p.launches; ++l) {
    const T* a = A + p.a_offset + l * p.a_step;
    const T* b = B + p.b_offset + l * p.b_step;
    T* c = C + p.c_offset + l * p.c_step;
    cublasCheck(cublasGemmStridedBatchedEx(handle, p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                           p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, a, type, lda,
                                           p.a_stride, b, type, ldb, p.b_stride, &beta, c, type, ldc, p.c_stride,
                                           batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

template void run_gemm<float>(const GemmPlan&, const float*, const float*, float*, float, float, cudaStream_t);
template void run_gemm<bf16>(const GemmPlan&, const bf16*, const bf16*, bf16*, float, float, cudaStream_t);

}  // namespace starflow::core::cuda
