// The CUDA instantiations of the model, its blocks and layers, and the sampler: the same code as the CPU's
// (core/models/*_impl.h), on CudaBackend<float> (fp32 mode) and CudaBackend<bf16>.
#include "core/backends/cuda/cuda_backend.h"
#include "core/models/sampler_impl.h"
#include "core/models/starflow_model_impl.h"

namespace starflow::core {

template <class T>
typename CudaBackend<T>::DecodeWeights CudaBackend<T>::decode_weights(const FlowModel<CudaBackend>& model,
                                                                     int64_t) const {
  return {model.parameters().data(), DecodeLayout::kParameters};
}

#define STARFLOW_INSTANTIATE(T)                                                                                   \
  template class CudaBackend<T>;                                                                                 \
  template struct LayerActivations<CudaBackend<T>>;                                                              \
  template struct LayerScratch<CudaBackend<T>>;                                                                  \
  template struct DecodeScratch<CudaBackend<T>>;                                                                 \
  template struct TransformerLayer<CudaBackend<T>>;                                                              \
  template class MetaBlock<CudaBackend<T>>;                                                                      \
  template class FlowModel<CudaBackend<T>>;                                                                      \
  template SampleBuffer<CudaBackend<T>> sample<CudaBackend<T>>(const FlowModel<CudaBackend<T>>&, NoDeduce<T>,    \
                                                               NoDeduce<T>, NoDeduce<T>, int64_t,                \
                                                               const SampleOptions&, SampleTrace<T>*);           \
  template SampleBuffer<CudaBackend<T>> denoise<CudaBackend<T>>(FlowModel<CudaBackend<T>>&, NoDeduce<T>,         \
                                                                NoDeduce<T>, int64_t, double);                   \
  template SampleBuffer<CudaBackend<T>> denoise_learned<CudaBackend<T>>(FlowModel<CudaBackend<T>>&, NoDeduce<T>, \
                                                                        NoDeduce<T>, int64_t, double);
STARFLOW_INSTANTIATE(float)
STARFLOW_INSTANTIATE(__nv_bfloat16)
#undef STARFLOW_INSTANTIATE

}  // namespace starflow::core
