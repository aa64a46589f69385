// starflow bench train: the CPU training step (forward + loss + backward + AdamW, float32) on configs A and
// B, against the PyTorch reference measured in the same command.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/models/starflow_model.h"
#include "core/optim/adamw.h"
#include "core/random.h"
#include "tools/bench/bench_configs.h"
#include "tools/bench/reference_runner.h"

extern "C" void openblas_set_num_threads(int);

namespace starflow::tools {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Milliseconds per training step of our implementation (median over `steps` after 2 warm-up steps).
double time_our_train_step(const BenchConfig& bc, int steps) {
  core::StarFlowModel<float> model(bc.model);
  model.init_parameters(1);
  core::AdamW<float> opt(static_cast<int64_t>(model.parameters().size()), core::AdamWConfig{});
  const auto& c = bc.model;
  core::Rng rng(7);
  std::vector<float> x(bc.batch * c.in_channels * c.img_size * c.img_size), y(bc.batch * c.txt_size * c.txt_dim);
  for (float& v : x) v = float(rng.normal());
  for (float& v : y) v = float(rng.normal());
  std::vector<double> ms;
  for (int s = 0; s < steps + 2; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    model.zero_gradients();
    model.forward(x.data(), y.data(), bc.batch, 1e-4);
    model.backward(nullptr);
    opt.step(model.parameters(), model.gradients(), 1e-4);
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (s >= 2) ms.push_back(dt);
  }
  return median(ms);
}

}  // namespace

int bench_train(int argc, char** argv) {
  std::vector<std::string> configs = {"A", "B"};
  int steps = 5, threads = 2;
  bool reference = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      const std::string v = argv[++i];
      configs = v == "all" ? std::vector<std::string>{"A", "B"} : std::vector<std::string>{v};
    } else if (a == "--steps" && i + 1 < argc) {
      steps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--threads" && i + 1 < argc) {
      threads = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--no-reference") {
      reference = false;
    } else {
      std::fprintf(stderr,
                   "usage: starflow bench train [--config A|B|all] [--steps N] [--threads N] [--no-reference]\n"
                   "  Times forward + loss + backward + AdamW (float32) on the bench configs and, unless\n"
                   "  --no-reference, the PyTorch reference (tools/bench/torch_reference.py) in the same run.\n");
      return 2;
    }
  }
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  std::printf("bench train: %d threads, median of %d steps after 2 warm-up steps\n", threads, steps);
  std::printf("%-7s %6s %12s %10s %14s %10s %8s\n", "config", "batch", "ours ms/step", "ours img/s", "torch ms/step",
              "torch img/s", "speedup");
  int status = 0;
  for (const std::string& name : configs) {
    BenchConfig bc;
    try {
      bc = bench_config(name);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench train: %s\n", e.what());
      return 2;
    }
    const double ours = time_our_train_step(bc, steps);
    double torch_ms = 0;
    std::string error;
    if (reference) {
      auto json = run_torch_reference({"--bench", "train", "--config", name, "--threads", std::to_string(threads),
                                       "--steps", std::to_string(steps)},
                                      error);
      if (json) {
        try {
          torch_ms = nlohmann::json::parse(*json).at("ms_median").get<double>();
        } catch (const std::exception& e) {
          error = std::string("unreadable reference output: ") + e.what();
        }
      }
    }
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
