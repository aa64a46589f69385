// The CPU instantiations of the transformer layer (float for speed, double for gradient checks).
#include "core/backends/cpu/cpu_backend.h"
#include "core/models/transformer_layer_impl.h"

namespace starflow::core {

template struct LayerActivations<CpuBackend<float>>;
template struct LayerActivations<CpuBackend<double>>;
template struct LayerScratch<CpuBackend<float>>;
template struct LayerScratch<CpuBackend<double>>;
template struct DecodeScratch<CpuBackend<float>>;
template struct DecodeScratch<CpuBackend<double>>;
template struct TransformerLayer<CpuBackend<float>>;
template struct TransformerLayer<CpuBackend<double>>;

}  // namespace starflow::core
