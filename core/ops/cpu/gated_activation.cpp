// Gated activation forward/backward on the CPU. Elementwise with scalar tanh/erf (no vector libm), so every
// element is computed the same way whatever the thread count or the split. The tanh form is the upstream
// NewGELUActivation's expression, term for term.
#include "core/ops/cpu/gated_activation.h"

#include <cmath>

namespace starflow::core::cpu {

namespace {

// Below this many elements a fork/join costs more than the loop.
constexpr int64_t kParallelElements = 16 * 1024;

constexpr double kSqrt2OverPi = 0.79788456080286535588;  // √(2/π)
constexpr double kTanhCubic = 0.044715;
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1/√(2π)

template <class T>
T activate(T x, Activation act) {
  switch (act) {
    case Activation::kGeluTanh:
      return T(0.5) * x * (T(1) + std::tanh(T(kSqrt2OverPi) * (x + T(kTanhCubic) * (x * x * x))));
    case Activation::kGeluErf: return T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2)));
    case Activation::kRelu: return x > T(0) ? x : T(0);
  }
  return x;
}

template <class T>
T derivative(T x, Activation act) {
  switch (act) {
    case Activation::kGeluTanh: {
      // d/dx 0.5·x·(1 + tanh(u)), u = c·(x + k·x³): 0.5·(1 + t) + 0.5·x·(1 − t²)·c·(1 + 3k·x²).
      const T t = std::tanh(T(kSqrt2OverPi) * (x + T(kTanhCubic) * (x * x * x)));
      return T(0.5) * (T(1) + t) +
             T(0.5) * x * (T(1) - t * t) * T(kSqrt2OverPi) * (T(1) + T(3 * kTanhCubic) * x * x);
    }
    case Activation::kGeluErf: {
      const T cdf = T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2)));
      return cdf + x * T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
    }
    case Activation::kRelu: return x > T(0) ? T(1) : T(0);
  }
  return T(1);
}

}  // namespace

template <class T>
void gated_activation_forward(T* out, const T* a, const T* gate, int64_t n, Activation act) {
#pragma omp parallel for schedule(static) if (n > kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    const T y = activate(a[i], act);
    out[i] = gate != nullptr ? y * gate[i] : y;
  }
}

template <class T>
void gated_activation_backward(T* da, T* dgate, const T* dout, const T* a, const T* gate, int64_t n,
                               Activation act) {
#pragma omp parallel for schedule(static) if (n > kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    if (da != nullptr) da[i] = (gate != nullptr ? dout[i] * gate[i] : dout[i]) * derivative(a[i], act);
    if (dgate != nullptr && gate != nullptr) dgate[i] = dout[i] * activate(a[i], act);
  }
}

template void gated_activation_forward<float>(float*, const float*, const float*, int64_t, Activation);
template void gated_activation_forward<double>(double*, const double*, const double*, int64_t, Activation);
template void gated_activation_backward<float>(float*, float*, const float*, const float*, const float*, int64_t,
                                               Activation);
template void gated_activation_backward<double>(double*, double*, const double*, const double*, const double*,
                                                int64_t, Activation);

}  // namespace starflow::core::cpu
