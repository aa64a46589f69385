// The GPU's LatentSampler (cuda_sampling.h).
#include "jobs/cuda/cuda_sampling.h"

#include <cuda_bf16.h>

#include <stdexcept>

#include "core/backends/cuda/cuda_backend.h"
#include "jobs/latent_sampling_impl.h"

namespace starflow::jobs {

LatentSampler cuda_sampler(const std::string& precision) {
  if (precision != "fp32" && precision != "bf16")
    throw std::invalid_argument("--precision: expected fp32 or bf16, got '" + precision + "'");
  return [precision](const SamplingRequest& r) {
    if (r.tp && r.tp->size() > 1)
      throw std::runtime_error("--device cuda samples on one GPU: --tp is for the CPU (tensor-parallel sampling over "
                               "NCCL is not there yet)");
    if (precision == "bf16") return sample_latents<core::CudaBackend<__nv_bfloat16>>(r, nullptr);
    return sample_latents<core::CudaBackend<float>>(r, nullptr);
  };
}

}  // namespace starflow::jobs
