// check_file_cuda: check_model on CudaBackend<float> or CudaBackend<bf16>.
#include "core/backends/cuda/cuda_golden.h"

#include "core/backends/cuda/cuda_backend.h"
#include "core/golden/golden_check_impl.h"

namespace starflow::core::golden {

Report check_file_cuda(const std::string& path, Precision precision) {
  if (precision == Precision::kFloat32) return check_model<CudaBackend<float>>(path, precision);
  return check_model<CudaBackend<__nv_bfloat16>>(path, precision);
}

}  // namespace starflow::core::golden
