// The CPU instantiations of the conv chain.
#include "core/backends/cpu/cpu_backend.h"
#include "core/models/conv_stack_impl.h"

namespace starflow::core {

template class ConvStack<CpuBackend<float>>;
template class ConvStack<CpuBackend<double>>;

}  // namespace starflow::core
