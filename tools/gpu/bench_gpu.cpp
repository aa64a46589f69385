// The CUDA model's training step and sampler, timed (bench_gpu.h). Parameters are set on the device to small
// constants (the timing does not depend on their values, and drawing billions of random numbers on the host
// would cost more than the benchmark); inputs are random.
#include "tools/gpu/bench_gpu.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/backends/cuda/cuda_backend.h"
#include "core/models/model_presets.h"
#include "core/models/model_transfer.h"
#include "core/models/sampler.h"
#include "core/models/starflow_model.h"
#include "core/ops/cuda/adamw.h"
#include "core/random.h"
#include "jobs/training_plan.h"
#include "tools/bench/bench_stats.h"

namespace starflow::tools {
namespace {

constexpr double kH200PeakTflops = 989;  // dense bf16

// The official code's figures on one H200 (bf16 autocast, fused AdamW), and the project's targets.
struct Anchor {
  const char* preset;
  int64_t batch;
  double official;  // s/step (train) or s per call (sample)
  double target;    // the speed-up over `official` to reach (sample: the seconds not to exceed)
};
constexpr Anchor kTrainAnchors[] = {{"3.86B", 8, 0.514, 1.3}, {"279M", 64, 0.432, 1.6}};
constexpr Anchor kSampleAnchors[] = {{"279M", 64, 157.5, 5.0}};

template <size_t N>
const Anchor* find_anchor(const Anchor (&anchors)[N], const std::string& preset, int64_t batch) {
  for (const Anchor& a : anchors)
    if (preset == a.preset && batch == a.batch) return &a;
  return nullptr;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double gpu_gb_in_use() {
  size_t free = 0, total = 0;
  cudaCheck(cudaMemGetInfo(&free, &total));
  return double(total - free) / 1e9;
}

void append_result(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return;
  std::ofstream(path, std::ios::app) << j.dump() << "\n";
}

template <class T>
std::vector<T> random_host(int64_t n, uint64_t seed) {
  core::Rng rng(seed);
  std::vector<T> v(static_cast<size_t>(n));
  for (T& x : v) x = core::convert_scalar<T>(rng.normal());
  return v;
}

template <class T>
int train(const GpuBenchOptions& o, const core::ModelPreset& preset, int64_t B) {
  using Backend = core::CudaBackend<T>;
  core::FlowModel<Backend> model(preset.model);
  model.set_recompute(o.recompute);
  const Backend& be = model.backend();
  const int64_t n = model.layout().total_size();
  be.fill(model.parameters().data(), core::convert_scalar<T>(0.02), n);
  // fp32 master weights and AdamW moments; the bf16 model's weights are the update's bf16 copy.
  core::cuda::DeviceBuffer<float> master(static_cast<size_t>(n)), m(static_cast<size_t>(n)), v(static_cast<size_t>(n));
  core::cuda::fill(master.data(), 0.02f, n, static_cast<cudaStream_t>(be.stream()));
  m.zero(static_cast<cudaStream_t>(be.stream()));
  v.zero(static_cast<cudaStream_t>(be.stream()));
  const auto& c = preset.model;
  typename Backend::template Buffer<T> x, y;
  Backend::resize(x, B * c.in_channels * c.img_size * c.img_size);
  Backend::resize(y, B * c.txt_size * c.txt_dim);
  core::from_host(be, x.data(), random_host<float>(int64_t(x.size()), 1).data(), int64_t(x.size()));
  core::from_host(be, y.data(), random_host<float>(int64_t(y.size()), 2).data(), int64_t(y.size()));
  const core::AdamWConfig adam;
  int64_t step = 0;
  auto one_step = [&] {
    model.zero_gradients();
    model.forward(x.data(), c.conditional() ? y.data() : nullptr, B, 1e-4);
    model.backward(nullptr);
    ++step;
    if constexpr (std::is_same_v<T, float>)
      core::cuda::adamw_update(model.parameters().data(), m.data(), v.data(), model.gradients().data(), n, adam, 1e-4,
                               step, nullptr, static_cast<cudaStream_t>(be.stream()));
    else
      core::cuda::adamw_update(master.data(), m.data(), v.data(), model.gradients().data(), n, adam, 1e-4, step,
                               model.parameters().data(), static_cast<cudaStream_t>(be.stream()));
    be.synchronize();
  };
  std::printf("bench train --device cuda: %s (%lld parameters), batch %lld, %s%s; %d timed steps after one untimed\n",
              preset.name.c_str(), (long long)model.layout().parameter_count(), (long long)B, o.precision.c_str(),
              o.recompute ? ", layer recompute" : "", o.steps);
  std::fflush(stdout);
  one_step();
  std::vector<double> seconds;
  double peak_gb = gpu_gb_in_use();
  for (int s = 0; s < o.steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    one_step();
    seconds.push_back(seconds_since(t0));
    peak_gb = std::max(peak_gb, gpu_gb_in_use());
  }
  const double t = median(seconds), tflops = jobs::train_flops_per_step(c, B) / t / 1e12;
  const double img_s = B / t;
  std::printf("  %.3f s/step (median), %.1f img/s, %.0f TFLOP/s, MFU %.1f%%, %.1f GB in use on the GPU\n", t, img_s,
              tflops, 100 * tflops / kH200PeakTflops, peak_gb);
  nlohmann::json result = {{"bench", "train"},    {"device", "cuda"},      {"preset", preset.name},
                           {"batch", B},          {"precision", o.precision}, {"recompute", o.recompute},
                           {"s_per_step", t},     {"img_per_s", img_s},    {"tflops", tflops},
                           {"mfu", tflops / kH200PeakTflops}, {"gpu_gb_in_use", peak_gb}};
  if (const Anchor* a = find_anchor(kTrainAnchors, preset.name, B)) {
    const double speedup = a->official / t;
    std::printf("  official code on an H200: %.3f s/step (%.1f img/s): %.2fx, target %.1fx: %s\n", a->official,
                B / a->official, speedup, a->target, speedup >= a->target ? "met" : "NOT met");
    result["official_s_per_step"] = a->official;
    result["speedup"] = speedup;
    result["target"] = a->target;
  }
  append_result(o.results, result);
  return 0;
}

template <class T>
int sample_bench(const GpuBenchOptions& o, const core::ModelPreset& preset, int64_t B) {
  using Backend = core::CudaBackend<T>;
  core::FlowModel<Backend> model(preset.model);
  const Backend& be = model.backend();
  be.fill(model.parameters().data(), core::convert_scalar<T>(0.02), model.layout().total_size());
  const auto& c = preset.model;
  typename Backend::template Buffer<T> noise, y, y_null;
  Backend::resize(noise, B * c.in_channels * c.img_size * c.img_size);
  Backend::resize(y, B * c.txt_size * c.txt_dim);
  Backend::resize(y_null, B * c.txt_size * c.txt_dim);
  core::from_host(be, noise.data(), random_host<float>(int64_t(noise.size()), 3).data(), int64_t(noise.size()));
  core::from_host(be, y.data(), random_host<float>(int64_t(y.size()), 4).data(), int64_t(y.size()));
  be.fill(y_null.data(), core::convert_scalar<T>(0.0), int64_t(y_null.size()));
  core::SampleOptions opt;
  opt.guidance = o.cfg;
  const bool guided = c.conditional() && o.cfg > 0;
  std::printf("bench sample --device cuda: %s, %lld images, %s, sequential%s; %d timed runs after one untimed\n",
              preset.name.c_str(), (long long)B, o.precision.c_str(), guided ? ", guided" : "", o.steps);
  std::fflush(stdout);
  auto once = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    const auto out = core::sample(model, noise.data(), c.conditional() ? y.data() : nullptr,
                                  guided ? y_null.data() : nullptr, B, opt);
    be.synchronize();
    return seconds_since(t0);
  };
  once();
  std::vector<double> seconds;
  for (int s = 0; s < o.steps; ++s) seconds.push_back(once());
  const double t = median(seconds);
  std::printf("  %.3f s per call (median), %.1f img/s, %.1f GB in use on the GPU\n", t, B / t, gpu_gb_in_use());
  nlohmann::json result = {{"bench", "sample"}, {"device", "cuda"}, {"preset", preset.name}, {"batch", B},
                           {"precision", o.precision}, {"guidance", guided ? o.cfg : 0.0}, {"s_per_call", t}};
  if (const Anchor* a = find_anchor(kSampleAnchors, preset.name, B); a && guided) {
    std::printf("  official code on an H200: %.1f s: %.0fx faster; target: at most %.1f s: %s\n", a->official,
                a->official / t, a->target, t <= a->target ? "met" : "NOT met");
    result["official_s"] = a->official;
    result["target_s"] = a->target;
  }
  append_result(o.results, result);
  return 0;
}

int64_t anchor_batch(const std::string& preset, int64_t batch, const core::ModelPreset& p) {
  if (batch > 0) return batch;
  if (preset == "3.86B") return 8;
  if (preset == "279M") return 64;
  return p.batch;
}

template <class Fn>
int run_checked(const char* what, Fn&& fn) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "%s: no usable CUDA device\n", what);
    return 2;
  }
  try {
    return fn();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", what, e.what());
    return 1;
  }
}

}  // namespace

int bench_train_gpu(const GpuBenchOptions& o) {
  return run_checked("bench train --device cuda", [&] {
    const core::ModelPreset& preset = core::model_preset(o.preset);
    const int64_t B = anchor_batch(o.preset, o.batch, preset);
    if (o.precision == "fp32") return train<float>(o, preset, B);
    if (o.precision == "bf16") return train<__nv_bfloat16>(o, preset, B);
    throw std::invalid_argument("--precision " + o.precision + ": expected bf16 or fp32");
  });
}

int bench_sample_gpu(const GpuBenchOptions& o) {
  return run_checked("bench sample --device cuda", [&] {
    const core::ModelPreset& preset = core::model_preset(o.preset);
    const int64_t B = anchor_batch(o.preset, o.batch, preset);
    if (o.precision == "fp32") return sample_bench<float>(o, preset, B);
    if (o.precision == "bf16") return sample_bench<__nv_bfloat16>(o, preset, B);
    throw std::invalid_argument("--precision " + o.precision + ": expected bf16 or fp32");
  });
}

}  // namespace starflow::tools
