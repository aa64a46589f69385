// Golden-fixture verification: rebuild the model a fixture's `config` describes, load its official-name
// parameters and inputs, recompute every result group the file holds and compare within the float32
// tolerances of tests/golden/data/README.md. Used by the parity tests and by `starflow check-golden`.
#pragma once
#include <string>
#include <vector>

namespace starflow::core::golden {

struct GroupResult {
  std::string group;      // "forward.z", "grad.<param>", "loss.nll", ...
  int tensors = 0;        // how many fixture tensors the group compared
  double max_abs = 0;     // max |ours − ref| over the group
  double max_rel = 0;     // worst per-tensor max|Δ| / max|ref| (for losses |Δ|/|ref|)
  double tolerance = 0;   // bound on the metric named by `metric`
  std::string metric;     // "rel" (max_rel) or "abs" (max_abs)
  std::string worst;      // the tensor with the largest error
  bool ran = true;        // false: the group is in the file but this build cannot compute it yet
  std::string note;
  bool pass() const { return !ran || (metric == "abs" ? max_abs <= tolerance : max_rel <= tolerance); }
};

struct Report {
  std::string file;
  std::string description;
  std::vector<GroupResult> groups;
  bool pass() const;
};

// The storage precision of the model under check: fp32 meets the fixtures' float32 tolerances; bf16 (the GPU's
// training precision) a looser bound, kBf16Tolerance relative on every numeric group, and its Jacobi iteration
// counts are not compared (rounding decides them). The bf16 bound is provisional: set from bf16's unit roundoff
// (2^-8) compounded over a few layers, to be tightened from the first GPU run's measured errors.
enum class Precision { kFloat32, kBFloat16 };
constexpr double kBf16Tolerance = 5e-2;

// The CPU float model. Throws std::runtime_error with one line "<file>: <problem>" for an unreadable file, a
// config that does not validate, or a tensor that is missing or has the wrong shape (naming the tensor and the
// expected shape). The CUDA model's check: core/backends/cuda/cuda_golden.h.
Report check_file(const std::string& path);

std::string format_report(const Report& report);

}  // namespace starflow::core::golden
