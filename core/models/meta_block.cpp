// The CPU instantiations of the flow block.
#include "core/backends/cpu/cpu_backend.h"
#include "core/models/meta_block_impl.h"

namespace starflow::core {

template class MetaBlock<CpuBackend<float>>;
template class MetaBlock<CpuBackend<double>>;

}  // namespace starflow::core
