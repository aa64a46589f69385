// `starflow sample --device cuda`: the sampling job's model on one GPU (the current device), in fp32 or bf16,
// KV caches on the device; the noise, conditions and latents cross to the host once each. Built with the CUDA
// backend and NCCL (STARFLOW_HAVE_CUDA_TRAINING).
#pragma once
#include <string>

#include "jobs/latent_sampling.h"

namespace starflow::jobs {

// precision: "fp32" or "bf16". Sampling over several GPUs (--tp) is refused with a message.
LatentSampler cuda_sampler(const std::string& precision);

}  // namespace starflow::jobs
