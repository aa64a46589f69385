// The CPU instantiations of the T5 encoder (float to run, double for checks).
#include "core/backends/cpu/cpu_backend.h"
#include "core/models/t5_encoder_impl.h"

namespace starflow::core {

template class T5Encoder<CpuBackend<float>>;
template class T5Encoder<CpuBackend<double>>;
template T5Encoder<CpuBackend<float>> load_t5_encoder<CpuBackend<float>>(const std::string&);
template T5Encoder<CpuBackend<double>> load_t5_encoder<CpuBackend<double>>(const std::string&);

}  // namespace starflow::core
