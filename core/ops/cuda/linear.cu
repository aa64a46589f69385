// Linear forward/backward on the GPU: three cuBLASLt GEMMs (out with the bias epilogue, dW accumulated in
// place with β = 1, din), the bias gradient as a deterministic column sum. Plans come from gemm_plan.h.
// When cuBLASLt has no algorithm for a call (odd leading dimensions, pointers offset into the flat parameter
// buffer), the same plan runs through plain cuBLAS and the bias through a small kernel.
#include "core/ops/cuda/linear.h"

#include <cstdint>

#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/gemm_plan.h"
#include "core/ops/cuda/kernel_util.cuh"

namespace starflow::core::cuda {
namespace {

using detail::from_float;
using detail::to_float;

// cuBLASLt assumes 256-byte aligned operands unless told otherwise; views into the flat parameter buffer
// can be aligned to as little as one element.
uint32_t alignment_of(const void* p) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(p);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

// The bias epilogue reads the bias with vector loads (seen failing elsewhere below 16-byte alignment).
constexpr uint32_t kBiasEpilogueAlignment = 16;

// The descriptors of one cuBLASLt call, destroyed on every path out.
struct LtCall {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  LtCall() = default;
  LtCall(const LtCall&) = delete;
  LtCall& operator=(const LtCall&) = delete;
  ~LtCall() {
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

// Runs a single (batch 1, launch 1) plan through cuBLASLt: C = op(A)·op(B) + β·C (+ bias on every column of
// the column-major C when bias is given). Returns false, having launched nothing, when cuBLASLt's heuristic
// offers no algorithm.
template <class T>
bool lt_matmul(const GemmPlan& p, const T* A, const T* B, T* C, const T* bias, float beta, cudaStream_t stream) {
  const cudaDataType_t type = DataType<T>::value;
  LtCall call;
  cublasCheck(cublasLtMatmulDescCreate(&call.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans_a = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t trans_b = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasCheck(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof(trans_a)));
  cublasCheck(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof(trans_b)));
  if (bias != nullptr) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const int32_t bias_type = type;
    cublasCheck(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    cublasCheck(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    cublasCheck(
        cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
  }
  // Layouts describe the stored matrices (before op): op(A) is m×k, so A is stored k×m when transposed.
  const uint64_t a_rows = p.trans_a ? p.k : p.m, a_cols = p.trans_a ? p.m : p.k;
  const uint64_t b_rows = p.trans_b ? p.n : p.k, b_cols = p.trans_b ? p.k : p.n;
  cublasCheck(cublasLtMatrixLayoutCreate(&call.a, type, a_rows, a_cols, p.lda));
  cublasCheck(cublasLtMatrixLayoutCreate(&call.b, type, b_rows, b_cols, p.ldb));
  cublasCheck(cublasLtMatrixLayoutCreate(&call.c, type, p.m, p.n, p.ldc));

  const Workspace workspace = cublaslt_workspace();
  const uint64_t workspace_bytes = workspace.bytes;
  const uint32_t align_a = alignment_of(A), align_b = alignment_of(B), align_c = alignment_of(C);
  cublasCheck(cublasLtMatmulPreferenceCreate(&call.preference));
  cublasCheck(cublasLtMatmulPreferenceSetAttribute(call.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                   &workspace_bytes, sizeof(workspace_bytes)));
  cublasCheck(cublasLtMatmulPreferenceSetAttribute(call.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                   &align_a, sizeof(align_a)));
  cublasCheck(cublasLtMatmulPreferenceSetAttribute(call.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                   &align_b, sizeof(align_b)));
  cublasCheck(cublasLtMatmulPreferenceSetAttribute(call.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                   &align_c, sizeof(align_c)));
  cublasCheck(cublasLtMatmulPreferenceSetAttribute(call.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                   &align_c, sizeof(align_c)));

  cublasLtHandle_t handle = cublaslt_handle();
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle, call.desc, call.a, call.b, call.c, call.c,
                                                               call.preference, 1, &result, &found);
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || found == 0) return false;
  cublasCheck(status);
  const float alpha = 1.0f;
  cublasCheck(cublasLtMatmul(handle, call.desc, &alpha, A, call.a, B, call.b, &beta, C, call.c, C, call.c,
                             &result.algo, workspace.data, workspace.bytes, stream));
  return true;
}

// out [M, N] += bias broadcast over rows (the fallback when the epilogue cannot be used).
template <class T>
__global__ void add_bias_kernel(T* out, const T* bias, int64_t M, int64_t N) {
  const int64_t total = M * N;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_float<T>(to_float(out[i]) + to_float(bias[i % N]));
}

template <class T>
struct BiasGradTerm {
  const T* dout;
  int64_t N;
  __device__ void operator()(int64_t r, int64_t c, float (&acc)[1]) const { acc[0] += to_float(dout[r * N + c]); }
};

// dbias[c] += Σ_r dout[r, c].
template <class T>
__global__ void bias_grad_kernel(T* dbias, const T* dout, int64_t M, int64_t N) {
  const int64_t c = blockIdx.x * int64_t(32) + threadIdx.x;
  float sums[1];
  detail::reduce_columns<1>(M, N, c, BiasGradTerm<T>{dout, N}, sums);
  if (threadIdx.y == 0 && c < N) dbias[c] = from_float<T>(to_float(dbias[c]) + sums[0]);
}

// One single-launch plan through cuBLASLt, or cuBLAS when cuBLASLt declines. Returns whether the bias was
// applied (only cuBLASLt's epilogue applies it).
template <class T>
bool matmul(const GemmPlan& p, const T* A, const T* B, T* C, const T* bias, float beta, cudaStream_t stream) {
  if (lt_matmul(p, A, B, C, bias, beta, stream)) return bias != nullptr;
  run_gemm(p, A, B, C, 1.0f, beta, stream);
  return false;
}

}  // namespace

template <class T>
void linear_forward(T* out, const T* in, const T* weight, const T* bias, int64_t M, int64_t K, int64_t N,
                    cudaStream_t stream) {
  if (M == 0 || N == 0) return;
  const bool epilogue = bias != nullptr && alignment_of(bias) >= kBiasEpilogueAlignment;
  const bool bias_done = matmul(linear_forward_plan(M, K, N), weight, in, out, epilogue ? bias : nullptr, 0.0f, stream);
  if (bias != nullptr && !bias_done) {
    add_bias_kernel<T><<<detail::grid_for(M * N, 256), 256, 0, stream>>>(out, bias, M, N);
    cudaCheckLaunch();
  }
}

template <class T>
void linear_backward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight, int64_t M, int64_t K,
                     int64_t N, bool accumulate_din, cudaStream_t stream) {
  if (M == 0 || N == 0 || K == 0) return;
  if (dweight != nullptr) matmul<T>(linear_backward_weight_plan(M, K, N), in, dout, dweight, nullptr, 1.0f, stream);
  if (dbias != nullptr) {
    bias_grad_kernel<T><<<detail::column_grid(N), detail::column_block(), 0, stream>>>(dbias, dout, M, N);
    cudaCheckLaunch();
  }
  if (din != nullptr)
    matmul<T>(linear_backward_input_plan(M, K, N), weight, dout, din, nullptr, accumulate_din ? 1.0f : 0.0f, stream);
}

template void linear_forward<float>(float*, const float*, const float*, const float*, int64_t, int64_t, int64_t,
                                    cudaStream_t);
template void linear_forward<bf16>(bf16*, const bf16*, const bf16*, const bf16*, int64_t, int64_t, int64_t,
                                   cudaStream_t);
template void linear_backward<float>(float*, float*, float*, const float*, const float*, const float*, int64_t,
                                     int64_t, int64_t, bool, cudaStream_t);
template void linear_backward<bf16>(bf16*, bf16*, bf16*, const bf16*, const bf16*, const bf16*, int64_t, int64_t,
                                    int64_t, bool, cudaStream_t);

}  // namespace starflow::core::cuda
