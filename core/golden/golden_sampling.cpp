// The golden checker's Jacobi iteration counts: the reference's, and the comparison of ours with them.
#include <map>
#include <nlohmann/json.hpp>

#include "core/golden/golden_internal.h"

namespace starflow::core::golden {

std::vector<std::vector<int64_t>> recorded_iterations(const io::SafeTensorsFile& file, const std::string& key,
                                                      int64_t K) {
  // The float32 rerun's counts are the ones a float32 implementation reproduces.
  for (const char* meta : {"float32_run_invertibility", "invertibility"}) {
    if (!file.metadata().count(meta)) continue;
    const nlohmann::json j = nlohmann::json::parse(file.metadata().at(meta));
    if (!j.contains(key)) continue;
    std::vector<std::vector<int64_t>> counts;
    for (int64_t k = K; k-- > 0;) counts.push_back(j.at(key).at("block" + std::to_string(k)).get<std::vector<int64_t>>());
    return counts;
  }
  return {};
}

namespace {

std::string counts_string(const std::vector<std::vector<int64_t>>& counts) {
  nlohmann::json j = counts;
  return j.dump();
}

}  // namespace

// The loose settings stop after 2-3 iterations, where float32 and float64 take the same decisions: their
// counts must match exactly. The tight ones (th 1e-20) converge in block + 1 iterations in float64, but in
// float32 the last update of a chunk may round to exactly zero one iteration earlier, or rounding may never
// settle below 1e-20 until max_iter: each chunk must land in [block size, max_iter] (the fixtures' tolerance
// table), and the result itself is compared as before. `tight` is null for an exact comparison.
GroupResult iteration_count_group(const std::string& group, const std::vector<std::vector<int64_t>>& ours,
                                  const std::vector<std::vector<int64_t>>& expected, const SampleOptions* tight) {
  GroupResult g;
  g.group = group;
  g.metric = "abs";
  g.tolerance = 0;
  g.tensors = 0;
  bool ok = ours.size() == expected.size();
  for (size_t k = 0; ok && k < ours.size(); ++k) {
    ok = ours[k].size() == expected[k].size();
    for (size_t c = 0; ok && c < ours[k].size(); ++c)
      ok = tight ? ours[k][c] >= tight->jacobi_block_size && ours[k][c] <= tight->jacobi_max_iter
                 : ours[k][c] == expected[k][c];
  }
  g.max_abs = ok ? 0 : 1;
  g.worst = "ours " + counts_string(ours);
  if (tight)
    g.worst += " within [" + std::to_string(tight->jacobi_block_size) + ", " + std::to_string(tight->jacobi_max_iter) +
               "]" + (ok ? "" : " per chunk, reference " + counts_string(expected));
  else if (!ok)
    g.worst += " vs " + counts_string(expected);
  return g;
}

}  // namespace starflow::core::golden
