// CPU flow head. σ and its derivative come from the clipped a; all arithmetic in the compute type T
// (the reference does it in fp32 even under bf16 autocast, which our float path matches). Double runs the
// scalar libm form below; float runs Eigen's packet math (flow_head_lanes.h) at the host's width: 8 lanes, or
// 16 on AVX-512 hosts (flow_head_avx512.cpp).
#include "core/ops/cpu/flow_head.h"

#include <cmath>

#include "core/build_config.h"
#include "core/ops/cpu/cpu_isa.h"
#include "core/ops/cpu/flow_head_lanes.h"
#include "core/ops/cpu/small_batch_avx512.h"

namespace starflow::core::cpu {
namespace {

constexpr double kLogEMinus1 = 0.541324854612918;  // ln(e − 1): softplus(0 + ln(e−1)) = 1

template <class T>
inline T softplus(T x) {  // stable log(1 + e^x)
  return std::log1p(std::exp(-std::abs(x))) + std::max(x, T(0));
}

template <class T>
inline T clip(T o, T s) {
  return s > 0 ? s * std::tanh(o / s) : o;
}

// σ(a) and dσ/da for the clipped a.
template <class T>
inline void sigma_of(T a, bool use_softplus, T& sigma, T& dsigma) {
  if (use_softplus) {
    const T x = a + T(kLogEMinus1);
    sigma = softplus(x);
    dsigma = T(1) / (T(1) + std::exp(-x));
  } else {
    sigma = std::exp(a);
    dsigma = sigma;
  }
}

}  // namespace

template <class T>
void flow_head_forward(T* z, T* logdet, const T* o, const T* v, int64_t rows, int64_t D,
                       const FlowHeadOptions& opt) {
  const T s = T(opt.soft_clip);
  for (int64_t r = 0; r < rows; ++r) {
    const T* orow = o + r * 2 * D;
    for (int64_t d = 0; d < D; ++d) {
      const T a = clip(orow[d], s), mu = clip(orow[D + d], s);
      T sigma, dsigma;
      sigma_of(a, opt.softplus, sigma, dsigma);
      z[r * D + d] = (v[r * D + d] - mu) / sigma;
      logdet[r * D + d] = opt.softplus ? -std::log(sigma) : -a;
    }
  }
}

template <class T>
void flow_head_sigma_mu(T* sigma, T* mu, const T* o, int64_t rows, int64_t D, const FlowHeadOptions& opt) {
  const T s = T(opt.soft_clip);
  for (int64_t r = 0; r < rows; ++r) {
    const T* orow = o + r * 2 * D;
    for (int64_t d = 0; d < D; ++d) {
      T dsigma;
      sigma_of(clip(orow[d], s), opt.softplus, sigma[r * D + d], dsigma);
      mu[r * D + d] = clip(orow[D + d], s);
    }
  }
}

template <class T>
void flow_head_backward(T* d_o, T* dv, const T* dz, T dlogdet, const T* o, const T* v, int64_t rows, int64_t D,
                        const FlowHeadOptions& opt) {
  const T s = T(opt.soft_clip);
  for (int64_t r = 0; r < rows; ++r) {
    const T* orow = o + r * 2 * D;
    T* drow = d_o + r * 2 * D;
    for (int64_t d = 0; d < D; ++d) {
      const T a = clip(orow[d], s), mu = clip(orow[D + d], s);
      T sigma, dsigma;
      sigma_of(a, opt.softplus, sigma, dsigma);
      const T g = dz[r * D + d];
      const T zval = (v[r * D + d] - mu) / sigma;
      dv[r * D + d] = g / sigma;
      // z = (v−μ)/σ, logdet = −log σ  ⇒  dL/dσ = −(g·z + dlogdet)/σ
      const T dsig = -(g * zval + dlogdet) / sigma;
      T da = dsig * dsigma, dmu = -g / sigma;
      if (s > 0) {  // d(s·tanh(o/s))/do = 1 − tanh²(o/s)
        const T ta = std::tanh(orow[d] / s), tm = std::tanh(orow[D + d] / s);
        da *= T(1) - ta * ta;
        dmu *= T(1) - tm * tm;
      }
      drow[d] = da;
      drow[D + d] = dmu;
    }
  }
}

template <>
void flow_head_forward<float>(float* z, float* logdet, const float* o, const float* v, int64_t rows, int64_t D,
                              const FlowHeadOptions& opt) {
#ifdef STARFLOW_AVX512_KERNELS
  if (use_avx512()) return avx512::flow_head_forward(z, logdet, o, v, rows, D, opt);
#endif
  FlowHeadLanes<8>::forward(z, logdet, o, v, rows, D, opt);
}

template <>
void flow_head_sigma_mu<float>(float* sigma, float* mu, const float* o, int64_t rows, int64_t D,
                               const FlowHeadOptions& opt) {
#ifdef STARFLOW_AVX512_KERNELS
  if (use_avx512()) return avx512::flow_head_sigma_mu(sigma, mu, o, rows, D, opt);
#endif
  FlowHeadLanes<8>::sigma_mu(sigma, mu, o, rows, D, opt);
}

template <>
void flow_head_backward<float>(float* d_o, float* dv, const float* dz, float dlogdet, const float* o, const float* v,
                               int64_t rows, int64_t D, const FlowHeadOptions& opt) {
#ifdef STARFLOW_AVX512_KERNELS
  if (use_avx512()) return avx512::flow_head_backward(d_o, dv, dz, dlogdet, o, v, rows, D, opt);
#endif
  FlowHeadLanes<8>::backward(d_o, dv, dz, dlogdet, o, v, rows, D, opt);
}

#define STARFLOW_INSTANTIATE(T)                                                                          \
  template void flow_head_forward<T>(T*, T*, const T*, const T*, int64_t, int64_t, const FlowHeadOptions&); \
  template void flow_head_sigma_mu<T>(T*, T*, const T*, int64_t, int64_t, const FlowHeadOptions&);          \
  template void flow_head_backward<T>(T*, T*, const T*, T, const T*, const T*, int64_t, int64_t,            \
                                      const FlowHeadOptions&);
STARFLOW_INSTANTIATE(double)
#undef STARFLOW_INSTANTIATE

}  // namespace starflow::core::cpu
