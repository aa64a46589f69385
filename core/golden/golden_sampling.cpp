// The sampling groups of a golden fixture: sequential, Jacobi (tight and loose, with their iteration
// counts), guided, and the denoising step, each from the fixture's own noise and conditions.
#include <map>
#include <nlohmann/json.hpp>

#include "core/golden/golden_internal.h"
#include "core/models/sampler.h"

namespace starflow::core::golden {
namespace {

constexpr double kTolSample = 1e-5;

// The per-chunk Jacobi iteration counts recorded by the reference, in decoding order (top block first).
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

void add_sampling_groups(Report& report, const io::SafeTensorsFile& file, StarFlowModel<float>& model) {
  const FlowConfig& cfg = model.config();
  if (!file.has("input.sample_noise")) return;
  const Shape image_shape = file.info("input.sample_noise").shape;
  const int64_t B = image_shape.at(0), K = cfg.num_blocks;
  const Tensor<float> noise = file.read<float>("input.sample_noise", {B, cfg.in_channels, cfg.img_size, cfg.img_size});
  Tensor<float> y, y_null;
  if (cfg.conditional()) {
    y = file.read<float>("input.y", {B, cfg.txt_size, cfg.txt_dim});
    if (file.has("input.y_null")) y_null = file.read<float>("input.y_null", {B, cfg.txt_size, cfg.txt_dim});
  }
  const float* yp = cfg.conditional() ? y.ptr() : nullptr;
  const double guidance = file.metadata().count("guidance") ? std::stod(file.metadata().at("guidance")) : 0.0;
  auto jacobi_options = [&](const std::string& key) {
    SampleOptions o;
    o.jacobi = true;
    const nlohmann::json j = nlohmann::json::parse(file.metadata_value(key));
    o.jacobi_block_size = j.at("jacobi_block_size").get<int64_t>();
    o.jacobi_max_iter = j.at("jacobi_max_iter").get<int64_t>();
    o.jacobi_threshold = j.at("jacobi_th").get<double>();
    return o;
  };

  struct Variant {
    std::string name;   // fixture tensor prefix
    bool cfg;
    const char* jacobi;  // metadata key of the Jacobi settings, or nullptr for sequential
    const char* counts;  // metadata key of the recorded iteration counts
  };
  const Variant variants[] = {
      {"reverse", false, nullptr, nullptr},
      {"reverse_jacobi", false, "jacobi", "jacobi_iterations"},
      {"reverse_jacobi_loose", false, "jacobi_loose", "jacobi_loose_iterations"},
      {"reverse_cfg", true, nullptr, nullptr},
      {"reverse_jacobi_cfg", true, "jacobi", "jacobi_cfg_iterations"},
      {"reverse_jacobi_loose_cfg", true, "jacobi_loose", "jacobi_loose_cfg_iterations"},
  };
  std::map<std::string, std::vector<float>> results;
  for (const Variant& v : variants) {
    if (!file.has(v.name + ".x")) continue;
    if (v.cfg && !file.has("input.y_null")) throw std::runtime_error(file.path() + ": no tensor 'input.y_null'");
    SampleOptions opt = v.jacobi ? jacobi_options(v.jacobi) : SampleOptions{};
    opt.guidance = v.cfg ? guidance : 0.0;
    SampleTrace<float> trace;
    const std::vector<float> x = sample(model, noise.ptr(), yp, v.cfg ? y_null.ptr() : nullptr, B, opt, &trace);
    results[v.name] = x;
    Accumulator a(v.name + ".x", kTolSample, "rel");
    a.add(v.name + ".x", x, file.read<double>(v.name + ".x", image_shape));
    report.groups.push_back(a.r);
    if (v.name == "reverse") {
      Accumulator seq("reverse.seq", kTolSample, "rel");
      for (int64_t k = 0; k <= K; ++k) {
        const std::string n = "reverse.seq." + std::to_string(k);
        if (file.has(n)) seq.add(n, trace.sequence[k], file.read<double>(n, image_shape));
      }
      if (seq.r.tensors) report.groups.push_back(seq.r);
    }
    if (v.counts) {
      const auto expected = recorded_iterations(file, v.counts, K);
      if (expected.empty()) continue;
      report.groups.push_back(iteration_count_group(v.name + " iterations", trace.jacobi_iterations, expected,
                                                    std::string(v.jacobi) == "jacobi" ? &opt : nullptr));
    }
  }
  // Denoising is applied to the fixture's own samples so that its error is measured on its own.
  const double noise_std = file.metadata().count("noise_std") ? std::stod(file.metadata().at("noise_std")) : 0.3;
  for (const std::string source : {"reverse", "reverse_cfg"}) {
    const std::string name = source == "reverse" ? "denoise" : "denoise_cfg";
    if (!file.has(name + ".x") || !file.has(source + ".x")) continue;
    const Tensor<float> x = file.read<float>(source + ".x", image_shape);
    const std::vector<float> out = denoise(model, x.ptr(), yp, B, noise_std);
    Accumulator a(name + ".x", kTolSample, "rel");
    a.add(name + ".x", out, file.read<double>(name + ".x", image_shape));
    report.groups.push_back(a.r);
  }
}

}  // namespace starflow::core::golden
