// Shared pieces of the golden checker: the per-group error accumulator and the sampling groups.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>

#include "core/golden/golden_check.h"
#include "core/io/safetensors.h"
#include "core/models/sampler.h"
#include "core/models/starflow_model.h"

namespace starflow::core::golden {

// Tolerances of the fixtures (tests/golden/data/README.md) ("rel" = max|Δ| / max|ref| per tensor).
constexpr double kTolForward = 1e-5, kTolLogdet = 2e-5, kTolLoss = 5e-6, kTolGrad = 1e-4, kTolRope = 1e-6;
constexpr double kTolAdamFixtureGrads = 1e-6, kTolAdamOwnGrads = 1e-4;

struct Accumulator {
  GroupResult r;
  Accumulator(std::string group, double tol, std::string metric) {
    r.group = std::move(group);
    r.tolerance = tol;
    r.metric = std::move(metric);
  }
  template <class A>
  void add(const std::string& name, const A& ours, const Tensor<double>& ref) {
    double max_abs = 0, max_ref = 0;
    for (size_t i = 0; i < ref.data.size(); ++i) {
      max_abs = std::max(max_abs, std::abs(double(ours[i]) - ref.data[i]));
      max_ref = std::max(max_ref, std::abs(ref.data[i]));
    }
    const double rel = max_ref > 0 ? max_abs / max_ref : max_abs;
    const double metric = r.metric == "abs" ? max_abs : rel;
    const double worst_so_far = r.metric == "abs" ? r.max_abs : r.max_rel;
    if (r.tensors == 0 || metric > worst_so_far) r.worst = name;
    r.max_abs = std::max(r.max_abs, max_abs);
    r.max_rel = std::max(r.max_rel, rel);
    ++r.tensors;
  }
};


// "<variant> iterations": the per-chunk Jacobi iteration counts against the reference's (outer index: blocks in
// decoding order). Exact for the loose settings; for the tight ones (`tight` non-null) each chunk within
// [jacobi_block_size, jacobi_max_iter] and the same number of chunks.
GroupResult iteration_count_group(const std::string& group, const std::vector<std::vector<int64_t>>& ours,
                                  const std::vector<std::vector<int64_t>>& expected, const SampleOptions* tight);

// A group's tolerance at a precision: the fixtures' for fp32, at least kBf16Tolerance relative for bf16.
inline double tolerance(double fp32, Precision precision) {
  return precision == Precision::kFloat32 ? fp32 : std::max(fp32, kBf16Tolerance);
}

// The per-chunk Jacobi iteration counts recorded by the reference, in decoding order (top block first).
std::vector<std::vector<int64_t>> recorded_iterations(const io::SafeTensorsFile& file, const std::string& key,
                                                      int64_t K);

}  // namespace starflow::core::golden
