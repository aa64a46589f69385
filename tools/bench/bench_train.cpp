// starflow bench train: the CPU training step (forward + loss + backward + AdamW, float32) on configs A and
// B, against the PyTorch reference measured in the same command, step for step.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/models/starflow_model.h"
#include "core/optim/adamw.h"
#include "core/random.h"
#include "tools/bench/bench_configs.h"
#include "tools/bench/bench_stats.h"
#include "tools/bench/reference_runner.h"
#include "tools/cpu_threads.h"
#include "tools/gpu/bench_gpu.h"
#include "tools/options.h"

namespace starflow::tools {
namespace {

// Our training step on a bench config: one call of step() is one timed step, in ms.
class OurTrainStep {
 public:
  explicit OurTrainStep(const core::ModelPreset& bc)
      : bc_(bc), model_(bc.model), opt_(static_cast<int64_t>(model_.parameters().size()), core::AdamWConfig{}) {
    model_.init_parameters(1);
    const auto& c = bc.model;
    core::Rng rng(7);
    x_.resize(bc.batch * c.in_channels * c.img_size * c.img_size);
    y_.resize(bc.batch * c.txt_size * c.txt_dim);
    for (float& v : x_) v = float(rng.normal());
    for (float& v : y_) v = float(rng.normal());
  }
  double step() {
    const auto t0 = std::chrono::steady_clock::now();
    model_.zero_gradients();
    model_.forward(x_.data(), y_.data(), bc_.batch, 1e-4);
    model_.backward(nullptr);
    opt_.step(model_.parameters(), model_.gradients(), 1e-4);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }

 private:
  core::ModelPreset bc_;
  core::StarFlowModel<float> model_;
  core::AdamW<float> opt_;
  std::vector<float> x_, y_;
};

}  // namespace

int bench_train(int argc, char** argv) {
  std::vector<std::string> configs = {"A", "B"};
  int steps = 5, threads = 2;
  bool reference = true;
  std::string device = "cpu";
  GpuBenchOptions gpu;
  const Option options[] = {
      {"--device", "cpu|cuda", "where to run (cuda: the CUDA model on one GPU, against the official code's H200 "
                               "figures; default cpu)",
       [&](const std::string& v) { device = v; }},
      {"--preset", "NAME", "cuda: the model preset (3.86B, 279M, ...; default 279M)",
       [&](const std::string& v) { gpu.preset = v; }},
      {"--batch", "N", "cuda: the batch (default: the official figure's, 8 for 3.86B, 64 for 279M)",
       [&](const std::string& v) { gpu.batch = parse_int(v); }},
      {"--precision", "bf16|fp32", "cuda: the storage of weights and activations (default bf16)",
       [&](const std::string& v) { gpu.precision = v; }},
      {"--recompute", nullptr, "cuda: layer recompute (activation checkpointing)",
       [&](const std::string&) { gpu.recompute = true; }},
      {"--results", "FILE", "cuda: append one JSON line with the figures to FILE",
       [&](const std::string& v) { gpu.results = v; }},
      {"--config", "A|B|all", "the bench model(s) (core/models/model_presets.cpp; default all)",
       [&](const std::string& v) { configs = v == "all" ? std::vector<std::string>{"A", "B"} : std::vector<std::string>{v}; }},
      int_option("--steps", steps, 1, "timed steps of each side; medians are reported (default 5)"),
      int_option("--threads", threads, 1, "CPU threads of both sides (default 2)"),
      {"--no-reference", nullptr, "time ours only (no PyTorch reference)", [&](const std::string&) { reference = false; }},
  };
  const int parsed = parse_options("bench train",
                                   "Times forward + loss + backward + AdamW (float32) on the bench configs and the\n"
                                   "PyTorch reference (python3 tools/torch_reference), taking turns.",
                                   options, argc, argv);
  if (parsed >= 0) return parsed;
  if (device == "cuda") {
#ifdef STARFLOW_HAVE_CUDA
    gpu.steps = steps;
    return bench_train_gpu(gpu);
#else
    std::fprintf(stderr, "bench train: --device cuda: this build has no CUDA backend (nvcc was not found when it "
                         "was configured)\n");
    return 2;
#endif
  }
  if (device != "cpu") {
    std::fprintf(stderr, "bench train: --device %s: expected cpu or cuda\n", device.c_str());
    return 2;
  }
  set_cpu_threads(threads);
  std::printf("bench train: %d threads, median of %d steps (the reference's and ours take turns, an untimed\n"
              "step before each timed one)\n", threads, steps);
  std::printf("%-7s %6s %12s %10s %14s %10s %8s\n", "config", "batch", "ours ms/step", "ours img/s", "torch ms/step",
              "torch img/s", "speedup");
  int status = 0;
  for (const std::string& name : configs) {
    core::ModelPreset bc;
    try {
      bc = bench_preset(name);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench train: %s\n", e.what());
      return 2;
    }
    OurTrainStep ours_step(bc);
    ours_step.step();  // a first step allocates what the later ones reuse
    // The reference builds the same model from its official JSON: the presets live only in core/models/model_presets.cpp.
    const std::vector<std::string> args = {"--bench", "train", "--config", name, "--model-config",
                                           bc.model.to_official_json(), "--batch", std::to_string(bc.batch),
                                           "--threads", std::to_string(threads)};
    const TurnTimes turns = take_turns(reference ? &args : nullptr, steps, [&] { return ours_step.step(); });
    const double ours = median(turns.ours), torch_ms = turns.reference.empty() ? 0 : median(turns.reference);
    const std::string& error = turns.error;
    if (torch_ms > 0) {
      std::printf("%-7s %6lld %12.1f %10.1f %14.1f %10.1f %7.2fx\n", name.c_str(), (long long)bc.batch, ours,
                  1000.0 * bc.batch / ours, torch_ms, 1000.0 * bc.batch / torch_ms, torch_ms / ours);
    } else {
      std::printf("%-7s %6lld %12.1f %10.1f %14s %10s %8s\n", name.c_str(), (long long)bc.batch, ours,
                  1000.0 * bc.batch / ours, "-", "-", "-");
      if (reference) {
        std::fprintf(stderr, "bench train: no PyTorch reference for config %s: %s\n", name.c_str(), error.c_str());
        status = 1;
      }
    }
    std::fflush(stdout);
  }
  return status;
}

}  // namespace starflow::tools
