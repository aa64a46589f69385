// The CPU instantiations of the sampler.
#include "core/models/sampler_impl.h"

namespace starflow::core {

#define STARFLOW_INSTANTIATE(B)                                                                                   \
  template SampleBuffer<B> sample<B>(const FlowModel<B>&, NoDeduce<B::Scalar>, NoDeduce<B::Scalar>,              \
                                     NoDeduce<B::Scalar>, int64_t, const SampleOptions&, SampleTrace<B::Scalar>*); \
  template void reverse_block<B>(const FlowModel<B>&, int64_t, NoDeduce<B::Scalar>, B::Scalar*, NoDeduce<B::Scalar>, \
                                 NoDeduce<B::Scalar>, int64_t, const SampleOptions&, std::vector<int64_t>*,       \
                                 std::vector<DecodeState<B>>*);                                                   \
  template SampleBuffer<B> denoise<B>(FlowModel<B>&, NoDeduce<B::Scalar>, NoDeduce<B::Scalar>, int64_t, double);    \
  template SampleBuffer<B> denoise_learned<B>(FlowModel<B>&, NoDeduce<B::Scalar>, NoDeduce<B::Scalar>, int64_t, double);
STARFLOW_INSTANTIATE(CpuBackend<float>)
STARFLOW_INSTANTIATE(CpuBackend<double>)
#undef STARFLOW_INSTANTIATE

}  // namespace starflow::core
