// Finite-difference gradient checking for double-precision op tests (ggml test-backend-ops style).
// Shared by every op test (dense ops, attention, rope, flow head, whole model), so it stays generic:
// it knows nothing about ops, only about a scalar loss of some buffers.
//
// API (namespace starflow::tests):
//   std::mt19937_64 rng(seed);
//   std::vector<double> random_vector(n, rng, lo = -1, hi = 1)   uniform values in [lo, hi)
//   double project(y, w)                                          Σ y⊙w: a scalar loss of a tensor output
//   std::vector<double> numeric_gradient(x, loss, h = 1e-6)       central differences of loss() w.r.t. each
//                                                                 element of x (perturbed in place, restored
//                                                                 bit-exactly); loss is any callable
//                                                                 returning double that reads x
//   double max_rel_error(analytic, numeric, tiny = 1e-12)         max|a−n| / max(max|n|, tiny); NaN-sticky
//   AssertionResult gradients_match(analytic, numeric, tol = 1e-6)  for EXPECT_TRUE, names the worst element
//
// The usual pattern: pick a fixed random projection w of the op's output, so L(x) = Σ w⊙f(x) and the
// analytic gradient is backward(dout = w). Then for each input or parameter buffer p:
//   auto loss = [&] { forward(out, x, p, ...); return project(out, w); };
//   EXPECT_TRUE(gradients_match(dp_from_backward, numeric_gradient(p, loss)));
// With h = 1e-6 in double the central difference is good to ~1e-9 relative for smooth ops, so a 1e-6
// tolerance is tight enough to catch any real mistake (a wrong term is usually off by > 1e-2).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <sstream>
#include <vector>

namespace starflow::tests {

inline std::vector<double> random_vector(int64_t n, std::mt19937_64& rng, double lo = -1.0, double hi = 1.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = dist(rng);
  return v;
}

inline double project(std::span<const double> y, std::span<const double> w) {
  double s = 0.0;
  for (size_t i = 0; i < y.size(); ++i) s += y[i] * w[i];
  return s;
}

template <class Loss>
std::vector<double> numeric_gradient(std::span<double> x, Loss&& loss, double h = 1e-6) {
  std::vector<double> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double plus = loss();
    x[i] = saved - h;
    const double minus = loss();
    x[i] = saved;  // restore exactly, not by subtracting h again, so later elements see the true point
    grad[i] = (plus - minus) / (2.0 * h);
  }
  return grad;
}

struct GradientComparison {
  double rel_error = 0.0;  // max|a−n| / max(max|n|, tiny); NaN if any element is NaN
  size_t worst = 0;        // index of the largest |a−n|
};

inline GradientComparison compare_gradients(std::span<const double> analytic, std::span<const double> numeric,
                                            double tiny = 1e-12) {
  GradientComparison result;
  double max_diff = 0.0, max_numeric = 0.0;
  for (size_t i = 0; i < numeric.size(); ++i) {
    const double diff = std::fabs(analytic[i] - numeric[i]);
    // Written so a NaN diff wins and then sticks: a NaN gradient must never pass as "small".
    if (std::isnan(diff) || diff > max_diff) {
      if (!std::isnan(max_diff)) {
        max_diff = diff;
        result.worst = i;
      }
    }
    max_numeric = std::fmax(max_numeric, std::fabs(numeric[i]));
  }
  result.rel_error = max_diff / std::fmax(max_numeric, tiny);
  return result;
}

inline double max_rel_error(std::span<const double> analytic, std::span<const double> numeric,
                            double tiny = 1e-12) {
  return compare_gradients(analytic, numeric, tiny).rel_error;
}

inline ::testing::AssertionResult gradients_match(std::span<const double> analytic,
                                                  std::span<const double> numeric, double tol = 1e-6) {
  if (analytic.size() != numeric.size()) {
    return ::testing::AssertionFailure() << "size mismatch: analytic " << analytic.size() << ", numeric "
                                         << numeric.size();
  }
  const GradientComparison c = compare_gradients(analytic, numeric);
  if (c.rel_error <= tol) return ::testing::AssertionSuccess();
  std::ostringstream msg;
  msg.precision(10);
  msg << "relative error " << c.rel_error << " > " << tol << "; worst element " << c.worst << ": analytic "
      << analytic[c.worst] << ", numeric " << numeric[c.worst];
  return ::testing::AssertionFailure() << msg.str();
}

}  // namespace starflow::tests
