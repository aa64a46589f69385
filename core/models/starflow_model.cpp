// The CPU instantiations of the model.
#include "core/models/starflow_model_impl.h"

namespace starflow::core {

template class FlowModel<CpuBackend<float>>;
template class FlowModel<CpuBackend<double>>;

}  // namespace starflow::core
