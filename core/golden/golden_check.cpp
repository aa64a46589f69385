// check_file(): one model per fixture, every group the file holds, the tolerances of tests/golden/data/README.md.
#include "core/golden/golden_check.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/io/model_weights.h"
#include "core/io/safetensors.h"
#include "core/models/starflow_model.h"
#include "core/optim/adamw.h"
#include "core/golden/golden_internal.h"
#include "core/ops/cpu/rope.h"

namespace starflow::core::golden {
namespace {

std::string fail_prefix(const std::string& path) { return path + ": "; }

}  // namespace

bool Report::pass() const {
  for (const auto& g : groups)
    if (!g.pass()) return false;
  return true;
}

Report check_file(const std::string& path) {
  const io::SafeTensorsFile file = io::SafeTensorsFile::open(path);
  Report report;
  report.file = path;
  if (file.metadata().count("description")) report.description = file.metadata().at("description");

  const FlowConfig cfg = io::read_config(file);
  double lambda = 1e-4;
  if (file.metadata().count("latent_norm_regularization"))
    lambda = std::stod(file.metadata().at("latent_norm_regularization"));

  const int64_t Cin = cfg.in_channels, H = cfg.img_size, K = cfg.num_blocks;
  if (!file.has("input.x")) throw std::runtime_error(fail_prefix(path) + "no tensor 'input.x'");
  const Shape& xs = file.info("input.x").shape;
  if (xs.size() != 4 || xs[0] < 1)
    throw std::runtime_error(fail_prefix(path) + "tensor 'input.x' has shape " + shape_string(xs) +
                             ", expected [B, " + std::to_string(Cin) + ", " + std::to_string(H) + ", " +
                             std::to_string(H) + "]");
  const int64_t B = xs[0];
  const Shape image_shape{B, Cin, H, H};
  const Shape token_shape{B, cfg.grid(), cfg.grid(), cfg.token_dim()};
  const Shape logdet_shape{B, cfg.tokens(), cfg.token_dim()};

  StarFlowModel<float> model(cfg);
  io::load_weights(model, file);
  const Tensor<float> x = file.read<float>("input.x", image_shape);
  Tensor<float> y;
  if (cfg.conditional()) y = file.read<float>("input.y", {B, cfg.txt_size, cfg.txt_dim});

  const std::vector<float> params0 = model.parameters();
  model.zero_gradients();
  const LossParts loss = model.forward(x.ptr(), cfg.conditional() ? y.ptr() : nullptr, B, lambda);
  std::vector<float> dx(x.data.size());
  model.backward(dx.data());

  auto has = [&](const std::string& n) { return file.has(n); };
  // forward.*
  if (has("forward.z")) {
    Accumulator a("forward.z", kTolForward, "rel");
    a.add("forward.z", model.z(), file.read<double>("forward.z", image_shape));
    report.groups.push_back(a.r);
  }
  {
    Accumulator a("forward.outputs", kTolForward, "rel");
    for (int64_t k = 0; k <= K; ++k) {
      const std::string n = "forward.outputs." + std::to_string(k);
      if (has(n)) a.add(n, model.outputs(k), file.read<double>(n, token_shape));
    }
    if (a.r.tensors) report.groups.push_back(a.r);
  }
  {
    Accumulator a("forward.logdet", kTolLogdet, "rel");
    for (int64_t k = 0; k < K; ++k) {
      const std::string n = "forward.logdet." + std::to_string(k);
      if (has(n)) a.add(n, model.logdet(k), file.read<double>(n, logdet_shape));
    }
    if (a.r.tensors) report.groups.push_back(a.r);
  }
  // loss.* (each its own row; relative error of a scalar)
  const std::map<std::string, double> losses = {{"loss.nll", loss.nll}, {"loss.z", loss.z},
                                                {"loss.logdet", loss.logdet}, {"loss.latent_norm", loss.latent_norm},
                                                {"loss.total", loss.total}};
  for (const auto& [name, value] : losses) {
    if (!has(name)) continue;
    Accumulator a(name, kTolLoss, "rel");
    a.add(name, std::vector<double>{value}, file.read<double>(name, {}));
    report.groups.push_back(a.r);
  }
  // grad.*
  {
    Accumulator a("grad.<param>", kTolGrad, "rel");
    for (const ParameterView& v : model.layout().views()) {
      const std::string n = "grad." + v.name;
      if (!has(n)) continue;
      a.add(n, std::span<const float>(model.gradients().data() + v.offset, v.size), file.read<double>(n, v.shape));
    }
    if (a.r.tensors) report.groups.push_back(a.r);
  }
  if (has("grad.input.x")) {
    Accumulator a("grad.input.x", kTolGrad, "rel");
    a.add("grad.input.x", dx, file.read<double>("grad.input.x", image_shape));
    report.groups.push_back(a.r);
  }
  // aux.rope.*: the angle tables themselves.
  for (const bool top : {false, true}) {
    const std::string n = top ? "aux.rope.top" : "aux.rope.shallow";
    if (!has(n)) continue;
    const bool text_rows = top && cfg.block_is_conditioned(K - 1);
    const std::vector<float> angles = cpu::rope_angles(cfg.head_dim, cfg.grid(), cfg.grid(), cfg.rope_seq_len(),
                                                       cfg.conditional(), cfg.txt_size, text_rows);
    Accumulator a(n, kTolRope, "abs");
    a.add(n, angles,
          file.read<double>(n, {(text_rows ? cfg.txt_size : 0) + cfg.tokens(), cfg.head_dim}));
    report.groups.push_back(a.r);
  }
  // adamw1.*: one fresh AdamW step, fed the fixture's gradients (the README's preferred test) and our own.
  if (has("adamw1." + model.layout().views().front().name) && file.metadata().count("adamw")) {
    const nlohmann::json j = nlohmann::json::parse(file.metadata().at("adamw"));
    AdamWConfig ac;
    ac.beta1 = j.at("betas")[0].get<double>();
    ac.beta2 = j.at("betas")[1].get<double>();
    ac.eps = j.at("eps").get<double>();
    ac.weight_decay = j.at("weight_decay").get<double>();
    const double lr = j.at("lr").get<double>();
    std::vector<float> fixture_grads(params0.size(), 0.f);
    for (const ParameterView& v : model.layout().views()) {
      Tensor<float> g = file.read<float>("grad." + v.name, v.shape);
      std::copy(g.data.begin(), g.data.end(), fixture_grads.begin() + v.offset);
    }
    for (const bool own : {false, true}) {
      std::vector<float> p = params0;
      AdamW<float> opt(static_cast<int64_t>(p.size()), ac);
      opt.step(p, own ? std::span<const float>(model.gradients()) : std::span<const float>(fixture_grads), lr);
      Accumulator a(own ? "adamw1 (own grads)" : "adamw1 (fixture grads)",
                    own ? kTolAdamOwnGrads : kTolAdamFixtureGrads, "abs");
      for (const ParameterView& v : model.layout().views())
        a.add("adamw1." + v.name, std::span<const float>(p.data() + v.offset, v.size),
              file.read<double>("adamw1." + v.name, v.shape));
      report.groups.push_back(a.r);
    }
  }
  add_sampling_groups(report, file, model);
  return report;
}

std::string format_report(const Report& report) {
  std::string out = report.file + "\n";
  char line[512];
  std::snprintf(line, sizeof line, "  %-36s %7s %12s %12s %10s  %-6s %s\n", "group", "tensors", "max|d|",
                "max|d|/|ref|", "tolerance", "result", "worst tensor");
  out += line;
  for (const GroupResult& g : report.groups) {
    if (!g.ran) {
      std::snprintf(line, sizeof line, "  %-36s %7d %12s %12s %10s  %-6s %s\n", g.group.c_str(), g.tensors, "-", "-",
                    "-", "SKIP", g.note.c_str());
    } else {
      char tol[32];
      std::snprintf(tol, sizeof tol, "%.0e %s", g.tolerance, g.metric.c_str());
      std::snprintf(line, sizeof line, "  %-36s %7d %12.3e %12.3e %10s  %-6s %s\n", g.group.c_str(), g.tensors,
                    g.max_abs, g.max_rel, tol, g.pass() ? "ok" : "FAIL", g.worst.c_str());
    }
    out += line;
  }
  out += report.pass() ? "  PASS\n" : "  FAIL\n";
  return out;
}

}  // namespace starflow::core::golden
