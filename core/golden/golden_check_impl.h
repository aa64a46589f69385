// The golden checker on any backend (check_model<Backend>): the weights and inputs moved to the backend, every
// result moved back and compared with the fixture. Included by each backend's instantiation.
#pragma once
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/golden/golden_internal.h"
#include "core/io/model_weights.h"
#include "core/io/safetensors.h"
#include "core/models/model_transfer.h"
#include "core/models/sampler.h"
#include "core/models/starflow_model.h"
#include "core/ops/cpu/rope.h"
#include "core/optim/adamw.h"

namespace starflow::core::golden {

constexpr double kTolSample = 1e-5;

inline std::string fail_prefix(const std::string& path) { return path + ": "; }

// A fixture tensor, read as float and put in a buffer of the backend.
template <class Backend>
typename Backend::template Buffer<typename Backend::Scalar> device_tensor(const Backend& be,
                                                                          const io::SafeTensorsFile& file,
                                                                          const std::string& name, const Shape& shape) {
  const Tensor<float> t = file.read<float>(name, shape);
  typename Backend::template Buffer<typename Backend::Scalar> b;
  Backend::resize(b, t.data.size());
  from_host(be, b.data(), t.data.data(), static_cast<int64_t>(t.data.size()));
  return b;
}

template <class Backend>
void add_sampling_groups(Report& report, const io::SafeTensorsFile& file, FlowModel<Backend>& model,
                         Precision precision) {
  const Backend& be = model.backend();
  using T = typename Backend::Scalar;
  const FlowConfig& cfg = model.config();
  if (!file.has("input.sample_noise")) return;
  const Shape image_shape = file.info("input.sample_noise").shape;
  const int64_t B = image_shape.at(0), K = cfg.num_blocks;
  const auto noise = device_tensor(be, file, "input.sample_noise", {B, cfg.in_channels, cfg.img_size, cfg.img_size});
  typename Backend::template Buffer<T> y, y_null;
  if (cfg.conditional()) {
    y = device_tensor(be, file, "input.y", {B, cfg.txt_size, cfg.txt_dim});
    if (file.has("input.y_null")) y_null = device_tensor(be, file, "input.y_null", {B, cfg.txt_size, cfg.txt_dim});
  }
  const T* yp = cfg.conditional() ? y.data() : nullptr;
  const int64_t image_numel = numel(image_shape);
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
    bool temperature = false;  // sequential decoding at the metadata's attn_temp
  };
  const Variant variants[] = {
      {"reverse", false, nullptr, nullptr},
      {"reverse_attn_temp", false, nullptr, nullptr, true},
      {"reverse_jacobi", false, "jacobi", "jacobi_iterations"},
      {"reverse_jacobi_loose", false, "jacobi_loose", "jacobi_loose_iterations"},
      {"reverse_cfg", true, nullptr, nullptr},
      {"reverse_jacobi_cfg", true, "jacobi", "jacobi_cfg_iterations"},
      {"reverse_jacobi_loose_cfg", true, "jacobi_loose", "jacobi_loose_cfg_iterations"},
  };
  for (const Variant& v : variants) {
    if (!file.has(v.name + ".x")) continue;
    if (v.cfg && !file.has("input.y_null")) throw std::runtime_error(file.path() + ": no tensor 'input.y_null'");
    SampleOptions opt = v.jacobi ? jacobi_options(v.jacobi) : SampleOptions{};
    opt.guidance = v.cfg ? guidance : 0.0;
    if (v.temperature) opt.attention_temperature = std::stod(file.metadata_value("attn_temp"));
    SampleTrace<T> trace;
    const auto out = sample(model, noise.data(), yp, v.cfg ? y_null.data() : nullptr, B, opt, &trace);
    const std::vector<float> x = to_host<float>(be, out.data(), image_numel);
    Accumulator a(v.name + ".x", tolerance(kTolSample, precision), "rel");
    a.add(v.name + ".x", x, file.read<double>(v.name + ".x", image_shape));
    report.groups.push_back(a.r);
    if (v.name == "reverse") {
      Accumulator seq("reverse.seq", tolerance(kTolSample, precision), "rel");
      for (int64_t k = 0; k <= K; ++k) {
        const std::string n = "reverse.seq." + std::to_string(k);
        std::vector<float> image(trace.sequence[k].size());
        for (size_t i = 0; i < image.size(); ++i) image[i] = convert_scalar<float>(trace.sequence[k][i]);
        if (file.has(n)) seq.add(n, image, file.read<double>(n, image_shape));
      }
      if (seq.r.tensors) report.groups.push_back(seq.r);
    }
    if (v.counts) {
      const auto expected = recorded_iterations(file, v.counts, K);
      if (expected.empty()) continue;
      if (precision == Precision::kBFloat16) {  // bf16 rounding decides where a chunk stops
        GroupResult g;
        g.group = v.name + " iterations";
        g.ran = false;
        g.note = "not compared in bf16";
        report.groups.push_back(g);
        continue;
      }
      report.groups.push_back(iteration_count_group(v.name + " iterations", trace.jacobi_iterations, expected,
                                                    std::string(v.jacobi) == "jacobi" ? &opt : nullptr));
    }
  }
  // Denoising is applied to the fixture's own samples so that its error is measured on its own.
  const double noise_std = file.metadata().count("noise_std") ? std::stod(file.metadata().at("noise_std")) : 0.3;
  for (const std::string source : {"reverse", "reverse_cfg"}) {
    const std::string name = source == "reverse" ? "denoise" : "denoise_cfg";
    if (!file.has(name + ".x") || !file.has(source + ".x")) continue;
    const auto x = device_tensor(be, file, source + ".x", image_shape);
    const auto denoised = denoise(model, x.data(), yp, B, noise_std);
    Accumulator a(name + ".x", tolerance(kTolSample, precision), "rel");
    a.add(name + ".x", to_host<float>(be, denoised.data(), image_numel), file.read<double>(name + ".x", image_shape));
    report.groups.push_back(a.r);
    // The learnable denoiser's step from the same samples (what sampling uses when the model has one).
    const std::string learned = source == "reverse" ? "denoise_learned" : "denoise_learned_cfg";
    if (!model.has_denoiser() || !file.has(learned + ".x")) continue;
    const auto stepped = denoise_learned(model, x.data(), yp, B, noise_std);
    Accumulator l(learned + ".x", tolerance(kTolSample, precision), "rel");
    l.add(learned + ".x", to_host<float>(be, stepped.data(), image_numel), file.read<double>(learned + ".x", image_shape));
    report.groups.push_back(l.r);
  }
}


template <class Backend>
Report check_model(const std::string& path, Precision precision) {
  using T = typename Backend::Scalar;
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

  // The weights are read by the CPU loader (names, shapes, shards) and moved to the backend under check.
  StarFlowModel<float> host(cfg);
  io::load_weights(host, file);
  FlowModel<Backend> model(cfg);
  copy_parameters(host, model);
  const Backend& be = model.backend();
  const auto x = device_tensor(be, file, "input.x", image_shape);
  typename Backend::template Buffer<T> y, dx;
  if (cfg.conditional()) y = device_tensor(be, file, "input.y", {B, cfg.txt_size, cfg.txt_dim});
  Backend::resize(dx, numel(image_shape));

  const std::vector<float> params0 = host.parameters();
  model.zero_gradients();
  const LossParts loss = model.forward(x.data(), cfg.conditional() ? y.data() : nullptr, B, lambda);
  model.backward(dx.data());
  auto host_of = [&](const typename FlowModel<Backend>::Buffer& b) {
    return to_host<float>(be, b.data(), static_cast<int64_t>(b.size()));
  };
  auto has = [&](const std::string& n) { return file.has(n); };
  const double noise_std = file.metadata().count("noise_std") ? std::stod(file.metadata().at("noise_std")) : 0.3;
  // The learnable self-denoiser's training step (train.py, after the flow's backward): its target is the flow's
  // input gradient σ_n·numel·∂loss.total/∂x, its loss the MSE, its gradients its own.
  if (model.has_denoiser() && has("denoiser.pred")) {
    const int64_t n = numel(image_shape);
    typename Backend::template Buffer<T> target;
    Backend::resize(target, n);
    be.copy(target.data(), dx.data(), n);
    be.scale(target.data(), noise_std * double(n), n);
    const double den_loss = model.denoiser_forward(x.data(), cfg.conditional() ? y.data() : nullptr, target.data(), B);
    model.denoiser_backward();
    Accumulator pred("denoiser.pred", tolerance(kTolForward, precision), "rel");
    pred.add("denoiser.pred", host_of(model.denoiser_prediction()), file.read<double>("denoiser.pred", image_shape));
    report.groups.push_back(pred.r);
    if (has("denoiser.target")) {
      Accumulator t("denoiser.target", tolerance(kTolForward, precision), "rel");
      t.add("denoiser.target", host_of(target), file.read<double>("denoiser.target", image_shape));
      report.groups.push_back(t.r);
    }
    if (has("loss.denoiser")) {
      Accumulator l("loss.denoiser", tolerance(kTolLoss, precision), "rel");
      l.add("loss.denoiser", std::vector<double>{den_loss}, file.read<double>("loss.denoiser", {}));
      report.groups.push_back(l.r);
    }
  }
  const std::vector<float> grads = host_of(model.gradients());

  // forward.*
  if (has("forward.z")) {
    Accumulator a("forward.z", tolerance(kTolForward, precision), "rel");
    a.add("forward.z", host_of(model.z()), file.read<double>("forward.z", image_shape));
    report.groups.push_back(a.r);
  }
  {
    Accumulator a("forward.outputs", tolerance(kTolForward, precision), "rel");
    for (int64_t k = 0; k <= K; ++k) {
      const std::string n = "forward.outputs." + std::to_string(k);
      if (has(n)) a.add(n, host_of(model.outputs(k)), file.read<double>(n, token_shape));
    }
    if (a.r.tensors) report.groups.push_back(a.r);
  }
  {
    Accumulator a("forward.logdet", tolerance(kTolLogdet, precision), "rel");
    for (int64_t k = 0; k < K; ++k) {
      const std::string n = "forward.logdet." + std::to_string(k);
      if (!has(n)) continue;
      if (cfg.block_is_identity(k)) {  // the official IdentityBlock returns zeros(B): ours must be exactly zero
        const std::vector<float> ours = host_of(model.logdet(k));
        float worst = 0;
        for (float v : ours) worst = std::max(worst, std::abs(v));
        Accumulator zero("forward.logdet (identity blocks)", 0.0, "abs");
        zero.add(n, std::vector<float>(static_cast<size_t>(B), worst), file.read<double>(n, {B}));
        report.groups.push_back(zero.r);
        continue;
      }
      a.add(n, host_of(model.logdet(k)), file.read<double>(n, logdet_shape));
    }
    if (a.r.tensors) report.groups.push_back(a.r);
  }
  // loss.* (each its own row; relative error of a scalar)
  const std::map<std::string, double> losses = {{"loss.nll", loss.nll}, {"loss.z", loss.z},
                                                {"loss.logdet", loss.logdet}, {"loss.latent_norm", loss.latent_norm},
                                                {"loss.total", loss.total}};
  for (const auto& [name, value] : losses) {
    if (!has(name)) continue;
    Accumulator a(name, tolerance(kTolLoss, precision), "rel");
    a.add(name, std::vector<double>{value}, file.read<double>(name, {}));
    report.groups.push_back(a.r);
  }
  // grad.*
  {
    // The denoiser's gradients come from its own loss: a group of their own.
    Accumulator a("grad.<param>", tolerance(kTolGrad, precision), "rel");
    Accumulator d("grad.learnable_self_denoiser", tolerance(kTolGrad, precision), "rel");
    for (const ParameterView& v : model.layout().views()) {
      const std::string n = "grad." + v.name;
      if (!has(n)) continue;
      Accumulator& group = v.name.rfind("learnable_self_denoiser.", 0) == 0 ? d : a;
      group.add(n, std::span<const float>(grads.data() + v.offset, v.size), file.read<double>(n, v.shape));
    }
    if (a.r.tensors) report.groups.push_back(a.r);
    if (d.r.tensors) report.groups.push_back(d.r);
  }
  if (has("grad.input.x")) {
    Accumulator a("grad.input.x", tolerance(kTolGrad, precision), "rel");
    a.add("grad.input.x", host_of(dx), file.read<double>("grad.input.x", image_shape));
    report.groups.push_back(a.r);
  }
  // aux.rope.*: the angle tables themselves.
  for (const bool top : {false, true}) {
    const std::string n = top ? "aux.rope.top" : "aux.rope.shallow";
    if (!has(n)) continue;
    const bool text_rows = cfg.block_is_conditioned(top ? K - 1 : 0);
    const std::vector<float> angles = cpu::rope_angles(cfg.head_dim, cfg.grid(), cfg.grid(), cfg.rope_seq_len(),
                                                       cfg.conditional(), cfg.txt_size, text_rows);
    Accumulator a(n, kTolRope, "abs");
    a.add(n, angles,
          file.read<double>(n, {(text_rows ? cfg.txt_size : 0) + cfg.tokens(), cfg.head_dim}));
    report.groups.push_back(a.r);
  }
  if (has("aux.rope.denoiser")) {  // the shallow blocks' layout, with text rows only for a conditional denoiser
    const bool text_rows = cfg.conditional_denoiser && cfg.conditional();
    Accumulator a("aux.rope.denoiser", kTolRope, "abs");
    a.add("aux.rope.denoiser",
          cpu::rope_angles(cfg.head_dim, cfg.grid(), cfg.grid(), cfg.rope_seq_len(), cfg.conditional(), cfg.txt_size,
                           text_rows),
          file.read<double>("aux.rope.denoiser", {(text_rows ? cfg.txt_size : 0) + cfg.tokens(), cfg.head_dim}));
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
      opt.step(p, own ? std::span<const float>(grads) : std::span<const float>(fixture_grads), lr);
      // The optimizer runs on the host; "own grads" checks the backend's gradients through it. AdamW's first
      // step is lr·g/(|g| + eps) ≈ lr·sign(g), so a gradient within bf16's error of zero may flip its update by
      // 2·lr (seen on the first GPU run): in bf16 the step is compared where the sign is determined, |g| ≥
      // 2·kBf16Tolerance·max|g| of the tensor (the grad groups' bound), at the fp32 tolerance.
      const bool bf16_own = own && precision == Precision::kBFloat16;
      Accumulator a(!own ? "adamw1 (fixture grads)" : bf16_own ? "adamw1 (own grads, |g| >= 0.1 max|g|)"
                                                               : "adamw1 (own grads)",
                    own ? kTolAdamOwnGrads : kTolAdamFixtureGrads, "abs");
      for (const ParameterView& v : model.layout().views()) {
        const Tensor<double> ref = file.read<double>("adamw1." + v.name, v.shape);
        const std::span<const float> ours(p.data() + v.offset, v.size);
        if (!bf16_own) {
          a.add("adamw1." + v.name, ours, ref);
          continue;
        }
        const auto g = std::span<const float>(fixture_grads).subspan(v.offset, v.size);
        float g_max = 0;
        for (float x : g) g_max = std::max(g_max, std::abs(x));
        std::vector<float> kept_ours;
        Tensor<double> kept_ref;
        for (int64_t i = 0; i < v.size; ++i)
          if (std::abs(g[i]) >= 2 * kBf16Tolerance * g_max) {
            kept_ours.push_back(ours[i]);
            kept_ref.data.push_back(ref.data[i]);
          }
        a.add("adamw1." + v.name, kept_ours, kept_ref);
      }
      report.groups.push_back(a.r);
    }
  }
  add_sampling_groups(report, file, model, precision);
  return report;
}

}  // namespace starflow::core::golden
