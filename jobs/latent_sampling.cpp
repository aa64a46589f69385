// The CPU's LatentSampler.
#include "jobs/latent_sampling.h"

#include "jobs/latent_sampling_impl.h"

namespace starflow::jobs {

std::vector<float> sample_latents_on_cpu(const SamplingRequest& request) {
  return sample_latents<core::CpuBackend<float>>(request, request.tp);
}

}  // namespace starflow::jobs
