// The sampling job's device part: load the weights into a model on a backend, sample (and denoise) from host
// noise and conditions, and return the latents on the host. Written once against the backend
// (latent_sampling_impl.h); the CPU's is sample_latents_on_cpu, the GPU's jobs/cuda/cuda_sampling.h.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/communicator.h"
#include "core/io/safetensors.h"
#include "core/models/flow_config.h"
#include "core/models/sampler.h"

namespace starflow::jobs {

struct SamplingRequest {
  core::FlowConfig model;
  const core::io::SafeTensorsFile* weights = nullptr;  // official names; this rank keeps its TP shard
  core::Communicator* tp = nullptr;                    // tensor-parallel group (host backends), or null
  std::span<const float> noise;                        // [B, C, H, W]
  const float* y = nullptr;                            // [B, L, E] or null (unconditional)
  const float* y_null = nullptr;                       // the null condition: guidance when given
  int64_t batch = 0;
  core::SampleOptions options;
  bool denoise = false;
  double noise_std = 0.3;
};

// Returns the latents [B, C, H, W] on the host.
using LatentSampler = std::function<std::vector<float>(const SamplingRequest&)>;

std::vector<float> sample_latents_on_cpu(const SamplingRequest& request);

}  // namespace starflow::jobs
