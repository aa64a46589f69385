// Gated activation forward/backward on the CPU. Every element is computed the same way whatever the thread
// count or the split: float's tanh GELU (SwiGLU's gate, T5's gated-gelu) through Eigen's vectorised tanh on
// whole 8-lane packets, a tail padded to one; the other forms with scalar libm. The tanh form is the
// upstream NewGELUActivation's expression, term for term.
#include "core/ops/cpu/gated_activation.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <type_traits>

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

// float's tanh GELU on packets: scalar tanhf (through expm1f) was three quarters of a SwiGLU model's
// activation time, and a quarter of its sampling time. Written through s = exp(−2u) (u the tanh's argument,
// clamped to ±40, where tanh is ±1 in float and s stays finite): (1 + tanh u)/2 = 1/(1 + s) and
// 1 − tanh²u = 4s/(1 + s)². Neither cancels, where 1 ± tanhf(u) loses every digit as tanh u nears ∓1; the same
// quantities in exact arithmetic. (No select or abs: Eigen 3.4 evaluates a select one lane at a time.)
using Lanes = Eigen::Array<float, 8, 1>;

EIGEN_STRONG_INLINE Lanes load_lanes(const float* p, int64_t count) {
  if (count == 8) return Eigen::Map<const Lanes>(p);
  Lanes x = Lanes::Zero();
  for (int64_t i = 0; i < count; ++i) x[i] = p[i];
  return x;
}

EIGEN_STRONG_INLINE void store_lanes(float* p, const Lanes& x, int64_t count) {
  if (count == 8) {
    Eigen::Map<Lanes> whole(p);
    whole = x;
    return;
  }
  for (int64_t i = 0; i < count; ++i) p[i] = x[i];
}

struct GeluTanhParts {
  Lanes half_one_plus_t;  // (1 + tanh u) / 2: gelu(x) = x · this
  Lanes one_minus_t2;     // 1 − tanh² u
};

EIGEN_STRONG_INLINE GeluTanhParts gelu_tanh_parts(const Lanes& x) {
  const Lanes u = (float(kSqrt2OverPi) * (x + float(kTanhCubic) * (x * x * x))).max(-40.f).min(40.f);
  const Lanes s = (-2.f * u).exp(), r = 1.f / (1.f + s);
  return {r, 4.f * s * r * r};
}

// body(first element, count ≤ 8) over [0, n) in whole packets, split between threads by packet.
template <class Body>
void for_each_packet(int64_t n, const Body& body) {
  const int64_t packets = (n + 7) / 8;
#pragma omp parallel for schedule(static) if (n > kParallelElements)
  for (int64_t p = 0; p < packets; ++p) body(8 * p, std::min<int64_t>(8, n - 8 * p));
}

}  // namespace

template <class T>
void gated_activation_forward(T* out, const T* a, const T* gate, int64_t n, Activation act) {
  if constexpr (std::is_same_v<T, float>) {
    if (act == Activation::kGeluTanh) {
      for_each_packet(n, [&](int64_t i, int64_t count) {
        const Lanes x = load_lanes(a + i, count);
        Lanes y = x * gelu_tanh_parts(x).half_one_plus_t;
        if (gate != nullptr) y *= load_lanes(gate + i, count);
        store_lanes(out + i, y, count);
      });
      return;
    }
  }
#pragma omp parallel for schedule(static) if (n > kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    const T y = activate(a[i], act);
    out[i] = gate != nullptr ? y * gate[i] : y;
  }
}

template <class T>
void gated_activation_backward(T* da, T* dgate, const T* dout, const T* a, const T* gate, int64_t n,
                               Activation act) {
  if constexpr (std::is_same_v<T, float>) {
    if (act == Activation::kGeluTanh) {
      for_each_packet(n, [&](int64_t i, int64_t count) {
        const Lanes x = load_lanes(a + i, count), d = load_lanes(dout + i, count);
        const GeluTanhParts t = gelu_tanh_parts(x);
        if (da != nullptr) {
          const Lanes slope = t.half_one_plus_t + 0.5f * x * t.one_minus_t2 * float(kSqrt2OverPi) *
                                                      (1.f + float(3 * kTanhCubic) * x * x);
          store_lanes(da + i, (gate != nullptr ? d * load_lanes(gate + i, count) : d) * slope, count);
        }
        if (dgate != nullptr && gate != nullptr) store_lanes(dgate + i, d * (x * t.half_one_plus_t), count);
      });
      return;
    }
  }
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
