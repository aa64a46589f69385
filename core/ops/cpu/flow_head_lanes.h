// The float flow head on L-lane Eigen packets (spec §2.3-2.4; the scalar form and the meaning of every
// quantity: flow_head.cpp). Included only by flow_head.cpp (L = 8, the build's baseline ISA) and
// flow_head_avx512.cpp (L = 16, compiled for AVX-512): everything here has internal linkage, so each of the
// two keeps its own copy compiled for its ISA and neither can be linked into the other's callers.
// Every lane is computed on its own (tanh, exp, log1p, log are elementwise packet functions), and the last
// partial packet is padded with zeros: an element's bits depend on neither its position nor the row count.
#pragma once
#include <cstdint>

#include <Eigen/Core>

#include "core/ops/flow_head_options.h"

namespace starflow::core::cpu {
namespace {  // NOLINT(build/namespaces): internal linkage per including file is the point (above)

template <int L>
struct FlowHeadLanes {
  using Lanes = Eigen::Array<float, L, 1>;

  static constexpr float kLogEMinus1 = 0.541324854612918f;  // ln(e − 1): softplus(0 + ln(e−1)) = 1

  // Packets run over the flattened [rows, D] index (D is 4 in the image configs, less than a packet): z,
  // logdet, σ, μ, dv and dz are contiguous there; o and d_o hold each row's two halves (a, μ) side by side.
  static Lanes load(const float* p, int64_t n) {
    if (n == L) return Eigen::Map<const Lanes>(p);
    Lanes x = Lanes::Zero();
    for (int64_t i = 0; i < n; ++i) x[i] = p[i];
    return x;
  }
  static void store(float* p, const Lanes& x, int64_t n) {
    if (n == L) {
      Eigen::Map<Lanes> out(p);
      out = x;
      return;
    }
    for (int64_t i = 0; i < n; ++i) p[i] = x[i];
  }
  // Elements i0..i0+n of the flattened index, from o's halves: a = o[r, d], μ = o[r, D + d].
  static void load_halves(const float* o, int64_t D, int64_t i0, int64_t n, Lanes& a, Lanes& mu) {
    a = Lanes::Zero();
    mu = Lanes::Zero();
    int64_t r = i0 / D, d = i0 % D;
    for (int64_t j = 0; j < n; ++j) {
      a[j] = o[r * 2 * D + d];
      mu[j] = o[r * 2 * D + D + d];
      if (++d == D) d = 0, ++r;
    }
  }
  static void store_halves(float* o, int64_t D, int64_t i0, int64_t n, const Lanes& a, const Lanes& mu) {
    int64_t r = i0 / D, d = i0 % D;
    for (int64_t j = 0; j < n; ++j) {
      o[r * 2 * D + d] = a[j];
      o[r * 2 * D + D + d] = mu[j];
      if (++d == D) d = 0, ++r;
    }
  }

  // The soft clip s·tanh(o/s) (s > 0) and t = tanh(o/s), whose 1 − t² is the clip's derivative.
  struct Clipped {
    Lanes value, t;
  };
  static Clipped clip(const Lanes& o, float s) {
    if (s <= 0) return {o, Lanes::Zero()};
    const Lanes t = (o * (1.f / s)).tanh();
    return {s * t, t};
  }

  // σ of the clipped a, and dσ/da when wanted: softplus(a + ln(e−1)) = log1p(e^−|x|) + max(x, 0) with
  // derivative the logistic 1/(1 + e^−x), written through the same e = e^−|x|; or e^a.
  static Lanes sigma(const Lanes& a, bool softplus, Lanes* dsigma) {
    if (!softplus) {
      const Lanes sig = a.exp();
      if (dsigma) *dsigma = sig;
      return sig;
    }
    const Lanes x = a + kLogEMinus1;
    const Lanes e = (-x.abs()).exp();
    if (dsigma) *dsigma = (x >= 0.f).select(1.f / (1.f + e), e / (1.f + e));
    return e.log1p() + x.max(0.f);
  }

  static void forward(float* z, float* logdet, const float* o, const float* v, int64_t rows, int64_t D,
                      const FlowHeadOptions& opt) {
    const float s = float(opt.soft_clip);
    for (int64_t i = 0; i < rows * D; i += L) {
      const int64_t n = rows * D - i < L ? rows * D - i : L;
      Lanes a, mu;
      load_halves(o, D, i, n, a, mu);
      a = clip(a, s).value;
      mu = clip(mu, s).value;
      const Lanes sig = sigma(a, opt.softplus, nullptr);
      store(z + i, (load(v + i, n) - mu) / sig, n);
      store(logdet + i, opt.softplus ? Lanes(-sig.log()) : Lanes(-a), n);
    }
  }

  static void sigma_mu(float* sigma_out, float* mu_out, const float* o, int64_t rows, int64_t D,
                       const FlowHeadOptions& opt) {
    const float s = float(opt.soft_clip);
    for (int64_t i = 0; i < rows * D; i += L) {
      const int64_t n = rows * D - i < L ? rows * D - i : L;
      Lanes a, mu;
      load_halves(o, D, i, n, a, mu);
      store(sigma_out + i, sigma(clip(a, s).value, opt.softplus, nullptr), n);
      store(mu_out + i, clip(mu, s).value, n);
    }
  }

  static void backward(float* d_o, float* dv, const float* dz, float dlogdet, const float* o, const float* v,
                       int64_t rows, int64_t D, const FlowHeadOptions& opt) {
    const float s = float(opt.soft_clip);
    for (int64_t i = 0; i < rows * D; i += L) {
      const int64_t n = rows * D - i < L ? rows * D - i : L;
      Lanes oa, omu;
      load_halves(o, D, i, n, oa, omu);
      const Clipped a = clip(oa, s), mu = clip(omu, s);
      Lanes dsigma;
      const Lanes sig = sigma(a.value, opt.softplus, &dsigma);
      const Lanes g = load(dz + i, n);
      const Lanes zval = (load(v + i, n) - mu.value) / sig;
      store(dv + i, g / sig, n);
      // z = (v−μ)/σ, logdet = −log σ  ⇒  dL/dσ = −(g·z + dlogdet)/σ
      Lanes da = -(g * zval + dlogdet) / sig * dsigma, dmu = -g / sig;
      if (s > 0) {
        da *= 1.f - a.t * a.t;
        dmu *= 1.f - mu.t * mu.t;
      }
      store_halves(d_o, D, i, n, da, dmu);
    }
  }
};

}  // namespace
}  // namespace starflow::core::cpu
