// The CPU instantiations of the SD VAE: float to run, double for checks against float.
#include "core/backends/cpu/cpu_backend.h"
#include "core/models/sd_vae_impl.h"

namespace starflow::core {

template class SdVae<CpuBackend<float>>;
template class SdVae<CpuBackend<double>>;

}  // namespace starflow::core
