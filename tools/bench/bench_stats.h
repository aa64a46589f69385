// Summary statistics shared by the bench commands (their runs are noisy: each reports a median).
#pragma once
#include <algorithm>
#include <stdexcept>
#include <vector>

namespace starflow::tools {

// The middle value of v (the upper middle for an even count).
inline double median(std::vector<double> v) {
  if (v.empty()) throw std::invalid_argument("median of no values");
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

}  // namespace starflow::tools
