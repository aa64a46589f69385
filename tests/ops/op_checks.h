// The registry's checks (tests/ops/op_cases.h), each a template over a case:
//  - check_gradients<Case>: CpuBackend<double>, the backward's input gradients against central differences of
//    the scalar loss Σ w⊙outputs;
//  - check_float_against_double<Case>: CpuBackend<float> against CpuBackend<double> on the same inputs;
//  - check_isa_twins<Case>: CpuBackend<float> on the AVX-512 kernels against the same on the baseline (AVX2)
//    kernels, on an AVX-512 host;
//  - compare_backends<Case, A, B>: two float backends (CUDA against the CPU in the GPU test binary).
// Each returns a gtest AssertionResult naming the tensor and the worst error.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/backends/cpu/cpu_backend.h"
#include "core/build_config.h"
#include "core/ops/cpu/cpu_isa.h"
#include "core/models/model_transfer.h"
#include "tests/ops/op_cases.h"
#include "tests/unit/gradcheck.h"

namespace starflow::tests::ops {

// Host values of a case's inputs and output projections, drawn once from a seed.
struct CaseData {
  std::vector<std::vector<double>> inputs, projections;
};

template <class Case>
CaseData draw(uint64_t seed) {
  std::mt19937_64 rng(seed);
  CaseData d;
  for (const Arg& a : Case::inputs()) d.inputs.push_back(random_vector(a.size, rng, a.lo, a.hi));
  for (const Arg& a : Case::outputs()) {
    if (a.projection) d.projections.emplace_back(static_cast<size_t>(a.size), *a.projection);
    else if (a.differentiable) d.projections.push_back(random_vector(a.size, rng));
    else d.projections.emplace_back(static_cast<size_t>(a.size), 0.0);
  }
  return d;
}

// One forward (and backward, with dout = the projections) of a case on backend B; the results on the host.
struct CaseResult {
  std::vector<std::vector<double>> outputs, input_grads;
};

template <class Case, class B>
CaseResult run(const B& be, const CaseData& d, bool with_backward) {
  using T = typename B::Scalar;
  OpTensors<B> t;
  const auto ins = Case::inputs();
  const auto outs = Case::outputs();
  auto make = [&](std::vector<typename OpTensors<B>::template Buffer<T>>& list, int64_t size, const double* host) {
    list.emplace_back();
    B::resize(list.back(), static_cast<size_t>(size));
    if (host) core::from_host(be, list.back().data(), host, size);
    else be.fill(list.back().data(), core::convert_scalar<T>(0.0), size);
  };
  for (size_t k = 0; k < ins.size(); ++k) {
    make(t.in, ins[k].size, d.inputs[k].data());
    make(t.din, ins[k].size, nullptr);
  }
  for (size_t k = 0; k < outs.size(); ++k) {
    make(t.out, outs[k].size, nullptr);
    make(t.dout, outs[k].size, d.projections[k].data());
  }
  B::resize(t.stats, static_cast<size_t>(Case::kStats));
  Case::forward(be, t);
  if (with_backward) Case::backward(be, t);
  CaseResult r;
  for (size_t k = 0; k < outs.size(); ++k) r.outputs.push_back(core::to_host<double>(be, t.o(int(k)), outs[k].size));
  for (size_t k = 0; k < ins.size(); ++k) r.input_grads.push_back(core::to_host<double>(be, t.di(int(k)), ins[k].size));
  return r;
}

inline double loss_of(const CaseResult& r, const CaseData& d) {
  double s = 0;
  for (size_t k = 0; k < r.outputs.size(); ++k) s += project(r.outputs[k], d.projections[k]);
  return s;
}

template <class Case>
::testing::AssertionResult check_gradients(uint64_t seed = 1) {
  if constexpr (!Case::kHasBackward) return ::testing::AssertionSuccess();
  const core::CpuBackend<double> be;
  CaseData d = draw<Case>(seed);
  const CaseResult analytic = run<Case>(be, d, true);
  const auto ins = Case::inputs();
  for (size_t k = 0; k < ins.size(); ++k) {
    if (!ins[k].differentiable) continue;
    const auto numeric = numeric_gradient(std::span<double>(d.inputs[k]), [&] { return loss_of(run<Case>(be, d, false), d); });
    auto r = gradients_match(analytic.input_grads[k], numeric, 1e-6);
    if (!r) return ::testing::AssertionFailure() << Case::kName << ": d" << ins[k].name << ": " << r.message();
  }
  return ::testing::AssertionSuccess();
}

// max|a − b| / max|b| over one tensor (b the reference); NaN-sticky.
inline double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::abs(a[i] - b[i]);
    if (!(e <= diff)) diff = e;  // NaN wins
    scale = std::max(scale, std::abs(b[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

template <class Case>
::testing::AssertionResult results_agree(const CaseResult& ours, const CaseResult& reference, double tolerance,
                                         const char* what) {
  const auto outs = Case::outputs();
  const auto ins = Case::inputs();
  for (size_t k = 0; k < outs.size(); ++k) {
    const double e = relative_error(ours.outputs[k], reference.outputs[k]);
    if (!(e <= tolerance))
      return ::testing::AssertionFailure() << Case::kName << " (" << what << "): output " << outs[k].name
                                           << " off by " << e << " relative (tolerance " << tolerance << ")";
  }
  if constexpr (Case::kHasBackward)
    for (size_t k = 0; k < ins.size(); ++k) {
      if (!ins[k].differentiable) continue;
      const double e = relative_error(ours.input_grads[k], reference.input_grads[k]);
      if (!(e <= tolerance))
        return ::testing::AssertionFailure() << Case::kName << " (" << what << "): d" << ins[k].name << " off by "
                                             << e << " relative (tolerance " << tolerance << ")";
    }
  return ::testing::AssertionSuccess();
}

template <class Case>
::testing::AssertionResult check_float_against_double(uint64_t seed = 2, double tolerance = 2e-5) {
  CaseData d = draw<Case>(seed);
  for (auto& v : d.inputs)  // both sides see the same float-representable inputs
    for (double& x : v) x = static_cast<float>(x);
  const CaseResult f = run<Case>(core::CpuBackend<float>{}, d, Case::kHasBackward);
  const CaseResult r = run<Case>(core::CpuBackend<double>{}, d, Case::kHasBackward);
  return results_agree<Case>(f, r, tolerance, "float vs double");
}

#ifdef STARFLOW_AVX512_KERNELS
// Needs host_has_avx512(). Ops without an AVX-512 form compare with themselves; those with one must agree to
// float rounding (some are bit-identical by design, others use other packet math or sum in 16 lanes).
template <class Case>
::testing::AssertionResult check_isa_twins(uint64_t seed = 4, double tolerance = 1e-6) {
  using core::cpu::CpuIsa;
  CaseData d = draw<Case>(seed);
  for (auto& v : d.inputs)
    for (double& x : v) x = static_cast<float>(x);
  const CpuIsa saved = core::cpu::cpu_isa();
  core::cpu::set_cpu_isa(CpuIsa::kAvx512);
  const CaseResult wide = run<Case>(core::CpuBackend<float>{}, d, Case::kHasBackward);
  core::cpu::set_cpu_isa(CpuIsa::kBaseline);
  const CaseResult baseline = run<Case>(core::CpuBackend<float>{}, d, Case::kHasBackward);
  core::cpu::set_cpu_isa(saved);
  return results_agree<Case>(wide, baseline, tolerance, "AVX-512 vs AVX2 kernels");
}
#endif

template <class Case, class A, class B>
::testing::AssertionResult compare_backends(const A& a, const B& b, const char* what, uint64_t seed = 3,
                                            double tolerance = 1e-5) {
  CaseData d = draw<Case>(seed);
  for (auto& v : d.inputs)
    for (double& x : v) x = static_cast<float>(x);
  return results_agree<Case>(run<Case>(a, d, Case::kHasBackward), run<Case>(b, d, Case::kHasBackward), tolerance,
                             what);
}

}  // namespace starflow::tests::ops
