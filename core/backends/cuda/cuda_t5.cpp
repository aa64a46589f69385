// The CUDA instantiation of the T5 encoder (core/models/t5_encoder_impl.h), fp32: the same code as the CPU's, so
// captions can be encoded on the GPU nodes (tests/gpu/test_cuda_t5.cpp holds it to the golden fixture).
#include "core/backends/cuda/cuda_backend.h"
#include "core/models/t5_encoder_impl.h"

namespace starflow::core {

template class T5Encoder<CudaBackend<float>>;
template T5Encoder<CudaBackend<float>> load_t5_encoder<CudaBackend<float>>(const std::string&);

}  // namespace starflow::core
