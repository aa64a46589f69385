// starflow bench sample: KV-cached sequential and Jacobi decoding of 16 images on config A, with and without
// guidance, against the PyTorch reference's sequential sampler measured in the same command, run for run.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "core/models/sampler.h"
#include "core/random.h"
#include "tools/bench/bench_configs.h"
#include "tools/bench/bench_stats.h"
#include "tools/bench/reference_runner.h"
#include "tools/cpu_threads.h"
#include "tools/gpu/bench_gpu.h"
#include "tools/options.h"

namespace starflow::tools {
namespace {

struct Case {
  std::string label;
  double cfg;
  bool jacobi;
};

}  // namespace

int bench_sample(int argc, char** argv) {
  std::string config = "A";
  int batch = 16, runs = 7, threads = 2, jacobi = 1;
  double cfg = 3.0;
  bool reference = true;
  std::string device = "cpu";
  GpuBenchOptions gpu;
  bool batch_given = false;
  std::vector<std::string> overrides;  // official config keys over the preset: the switches' sampling speed
  const Option options[] = {
      {"--device", "cpu|cuda", "where to run (cuda: the CUDA model on one GPU, against the official code's H200 "
                               "figure; default cpu)",
       [&](const std::string& v) { device = v; }},
      {"--preset", "NAME", "cuda: the model preset (default 279M)", [&](const std::string& v) { gpu.preset = v; }},
      {"--precision", "bf16|fp32", "cuda: the storage of weights and activations (default bf16)",
       [&](const std::string& v) { gpu.precision = v; }},
      {"--results", "FILE", "cuda: append one JSON line with the figures to FILE",
       [&](const std::string& v) { gpu.results = v; }},
      {"--config", "A|B", "the bench model (core/models/model_presets.cpp; default A)",
       [&](const std::string& v) { config = v; }},
      {"--set", "KEY=VALUE", "an official config key over the preset, e.g. use_swiglu=1 or norm_type=rms_norm "
                             "(repeatable; both sides sample the changed model)",
       [&](const std::string& v) { overrides.push_back(v); }},
      {"--batch", "N", "images per sampling call (default 16; cuda: 64)",
       [&](const std::string& v) {
         const long long b = parse_int(v);
         if (b < 1) throw std::invalid_argument("expected an integer >= 1");
         batch = static_cast<int>(b);
         batch_given = true;
       }},
      {"--cfg", "W", "guidance weight of the guided rows (default 3)", [&](const std::string& v) { cfg = parse_double(v); }},
      int_option("--runs", runs, 1, "timed runs of each side; medians are reported (default 7)"),
      int_option("--threads", threads, 1, "CPU threads of both sides (default 2)"),
      int_option("--jacobi", jacobi, 0, "1: also time Jacobi decoding, 0: sequential only (default 1)"),
      {"--no-reference", nullptr, "time ours only (no PyTorch reference)", [&](const std::string&) { reference = false; }},
  };
  const int parsed = parse_options(
      "bench sample",
      "Samples a batch (sequential KV-cached and Jacobi block 16 / threshold 1e-3, each without and with guidance)\n"
      "and the PyTorch reference's sequential sampler (python3 tools/torch_reference), taking turns.",
      options, argc, argv);
  if (parsed >= 0) return parsed;
  if (device == "cuda") {
#ifdef STARFLOW_HAVE_CUDA
    gpu.steps = runs;
    gpu.cfg = cfg;
    gpu.batch = batch_given ? batch : 0;
    return bench_sample_gpu(gpu);
#else
    std::fprintf(stderr, "bench sample: --device cuda: this build has no CUDA backend (nvcc was not found when it "
                         "was configured)\n");
    return 2;
#endif
  }
  if (device != "cpu") {
    std::fprintf(stderr, "bench sample: --device %s: expected cpu or cuda\n", device.c_str());
    return 2;
  }
  core::ModelPreset bc;
  try {
    bc = bench_preset(config);
    if (!overrides.empty()) bc.model = with_official_overrides(bc.model, overrides);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench sample: %s\n", e.what());
    return 2;
  }
  set_cpu_threads(threads);
  const auto& c = bc.model;
  core::StarFlowModel<float> model(c);
  model.init_parameters(1);
  // A freshly initialised model has proj_out = 0, i.e. an identity-like flow; perturb it so the timings
  // are those of a model that actually transforms (Jacobi iteration counts depend on it).
  core::Rng rng(3);
  for (float& p : model.parameters()) p += float(0.02 * rng.normal());
  std::vector<float> noise(batch * c.in_channels * c.img_size * c.img_size), y(batch * c.txt_size * c.txt_dim),
      y_null(y.size(), 0.f);
  for (float& v : noise) v = float(rng.normal());
  for (float& v : y) v = float(rng.normal());
  // The null caption, the same for every sample (as T5("") is, and as the PyTorch reference draws it): one
  // "EOS" vector, then zero padding.
  for (int64_t e = 0; e < c.txt_dim; ++e) {
    const float eos = float(rng.normal());
    for (int64_t b = 0; b < batch; ++b) y_null[b * c.txt_size * c.txt_dim + e] = eos;
  }

  // Sampling keeps the decode weights in the kernel's tile layout between calls (as model loading would);
  // every timed run, ours untimed first, finds them tiled. Their one-time cost is printed, not hidden.
  const auto tile_start = std::chrono::steady_clock::now();
  for (int64_t k = 0; k < c.num_blocks; ++k) model.decode_weights(k);
  const double tile_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - tile_start).count();
  std::string label = config;
  for (const std::string& o : overrides) label += " " + o;
  std::printf("bench sample: config %s, %lld images, %d threads, median of %d runs (decode weights tiled once: "
              "%.1f ms)\n",
              label.c_str(), (long long)batch, threads, runs, tile_ms);
  std::printf("%-22s %10s %10s %14s %9s\n", "decoding", "ours ms", "img/s", "torch ms", "speedup");
  const Case cases[] = {{"sequential", 0, false}, {"sequential cfg", cfg, false}, {"jacobi", 0, true},
                        {"jacobi cfg", cfg, true}};
  double sequential_ms[2] = {0, 0};
  int status = 0;
  for (const Case& k : cases) {
    if (k.jacobi && !jacobi) continue;
    core::SampleOptions opt;
    opt.guidance = k.cfg;
    opt.jacobi = k.jacobi;
    opt.jacobi_block_size = 16;
    opt.jacobi_max_iter = 32;
    opt.jacobi_threshold = 1e-3;
    auto ours_once = [&] {
      const auto t0 = std::chrono::steady_clock::now();
      core::sample(model, noise.data(), y.data(), k.cfg > 0 ? y_null.data() : nullptr, batch, opt);
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    };
    // The reference builds the same model from its official JSON: the presets live only in core/models/model_presets.cpp.
    std::vector<std::string> args = {"--bench", "sample", "--config", config, "--model-config",
                                     c.to_official_json(), "--threads", std::to_string(threads),
                                     "--batch", std::to_string(batch)};
    if (k.cfg > 0) args.insert(args.end(), {"--cfg", std::to_string(k.cfg)});
    const TurnTimes turns = take_turns(!k.jacobi && reference ? &args : nullptr, runs, ours_once);
    const std::vector<double>& ms = turns.ours;
    const double ours = median(ms);
    std::string torch = "-", speedup = "-";
    if (!k.jacobi) {
      sequential_ms[k.cfg > 0] = ours;
      if (!turns.reference.empty()) {
        const double t = median(turns.reference);
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.1f", t);
        torch = buf;
        std::snprintf(buf, sizeof buf, "%.2fx", t / ours);
        speedup = buf;
      } else if (reference) {
        std::fprintf(stderr, "bench sample: no PyTorch reference: %s\n", turns.error.c_str());
        status = 1;
      }
    } else {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.2fx vs seq", sequential_ms[k.cfg > 0] / ours);
      speedup = buf;
    }
    std::printf("%-22s %10.1f %10.1f %14s %9s\n", (k.label + (k.cfg > 0 ? " w=" + std::to_string(k.cfg).substr(0, 3)
                                                                             : std::string())).c_str(),
                ours, 1000.0 * batch / ours, torch.c_str(), speedup.c_str());
    std::fflush(stdout);
  }
  return status;
}

}  // namespace starflow::tools
