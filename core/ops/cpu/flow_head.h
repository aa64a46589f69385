// The output head of a flow block after proj_out (spec §2.3-2.4): soft clip, split into (a, μ),
// σ = softplus(a + ln(e−1)) or exp(a), and the affine step z = (v − μ)/σ with log-det −log σ.
#pragma once
#include <cstdint>

#include "core/ops/flow_head_options.h"

namespace starflow::core::cpu {

// o [rows, 2D] (raw proj_out output, first D = a, last D = μ); v [rows, D] the permuted data.
// Writes z [rows, D] and logdet [rows, D] = −log σ.
template <class T>
void flow_head_forward(T* z, T* logdet, const T* o, const T* v, int64_t rows, int64_t D, const FlowHeadOptions& opt);

// σ and μ of each element (for the reverse pass and guidance). sigma, mu [rows, D].
template <class T>
void flow_head_sigma_mu(T* sigma, T* mu, const T* o, int64_t rows, int64_t D, const FlowHeadOptions& opt);

// Backward of flow_head_forward for upstream dz [rows, D] and a uniform upstream gradient dlogdet on every
// logdet element (the loss averages the log-dets). Writes d_o [rows, 2D] and dv [rows, D] (the direct
// dependence of z on v: dz/σ), both overwritten.
template <class T>
void flow_head_backward(T* d_o, T* dv, const T* dz, T dlogdet, const T* o, const T* v, int64_t rows, int64_t D,
                        const FlowHeadOptions& opt);

// float has its own definitions (vectorised at the host's width); declared here so that no caller instantiates the
// generic form for it.
template <>
void flow_head_forward<float>(float* z, float* logdet, const float* o, const float* v, int64_t rows, int64_t D,
                              const FlowHeadOptions& opt);
template <>
void flow_head_sigma_mu<float>(float* sigma, float* mu, const float* o, int64_t rows, int64_t D,
                               const FlowHeadOptions& opt);
template <>
void flow_head_backward<float>(float* d_o, float* dv, const float* dz, float dlogdet, const float* o, const float* v,
                               int64_t rows, int64_t D, const FlowHeadOptions& opt);

}  // namespace starflow::core::cpu
