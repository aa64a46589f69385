// The golden fixtures through the CUDA model: the same checker as the CPU's (core/golden/golden_check_impl.h),
// with the weights and inputs moved to the GPU and every result moved back. fp32 must meet the fixtures'
// float32 tolerances; bf16 the provisional bf16 bound (core/golden/golden_check.h).
#pragma once
#include <string>

#include "core/golden/golden_check.h"

namespace starflow::core::golden {

Report check_file_cuda(const std::string& path, Precision precision);

}  // namespace starflow::core::golden
