// The output head of a flow block on the GPU (after proj_out): soft clip, split into (a, μ),
// σ = softplus(a + ln(e−1)) or exp(a), z = (v − μ)/σ with log-det −log σ. Same arguments as
// core/ops/cpu/flow_head.h plus the stream. T is the storage (float or bf16); the flow arithmetic (σ, log σ,
// the affine step) is always fp32, as the reference does under bf16 autocast.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/ops/flow_head_options.h"

namespace starflow::core::cuda {

// o [rows, 2D] (first D = a, last D = μ); v [rows, D]. Writes z [rows, D] and logdet [rows, D] = −log σ.
template <class T>
void flow_head_forward(T* z, T* logdet, const T* o, const T* v, int64_t rows, int64_t D, const FlowHeadOptions& opt,
                       cudaStream_t stream = 0);

// σ and μ of each element (reverse pass, guidance). sigma, mu [rows, D].
template <class T>
void flow_head_sigma_mu(T* sigma, T* mu, const T* o, int64_t rows, int64_t D, const FlowHeadOptions& opt,
                        cudaStream_t stream = 0);

// Backward for upstream dz [rows, D] and a uniform dlogdet on every logdet element. Writes d_o [rows, 2D] and
// dv [rows, D] (= dz/σ), both overwritten.
template <class T>
void flow_head_backward(T* d_o, T* dv, const T* dz, float dlogdet, const T* o, const T* v, int64_t rows, int64_t D,
                        const FlowHeadOptions& opt, cudaStream_t stream = 0);

}  // namespace starflow::core::cuda
