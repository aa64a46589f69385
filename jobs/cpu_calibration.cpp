// measure_cpu_layer: a one-layer StarFlowModel<float>, forward + backward, median of repeated runs.
#include "jobs/cpu_calibration.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/models/starflow_model.h"
#include "core/random.h"
#include "jobs/training_plan.h"

namespace starflow::jobs {

CpuLayerTiming measure_cpu_layer(int64_t width, int64_t tokens, int64_t batch, int64_t head_dim, int repeats) {
  const auto side = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(tokens))));
  if (side * side != tokens)
    throw std::invalid_argument("the calibration layer needs a square token grid (e.g. 256 = 16x16), got " +
                                std::to_string(tokens) + " tokens");
  if (batch < 1 || repeats < 1) throw std::invalid_argument("the calibration needs a batch and repeats of at least 1");
  core::FlowConfig cfg;
  cfg.in_channels = 4;
  cfg.img_size = side;
  cfg.patch_size = 1;
  cfg.channels = width;
  cfg.head_dim = head_dim;
  cfg.num_blocks = 1;
  cfg.layers_per_block = {1};
  cfg.validate();
  core::StarFlowModel<float> model(cfg);
  model.init_parameters(1);
  core::Rng rng(3);
  std::vector<float> x(static_cast<size_t>(batch * cfg.in_channels * side * side));
  for (float& v : x) v = static_cast<float>(rng.normal());
  std::vector<double> ms;
  for (int r = 0; r <= repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    model.zero_gradients();
    model.forward(x.data(), nullptr, batch, 0.0);
    model.backward(nullptr);
    const double elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (r > 0) ms.push_back(elapsed);  // the first run is the warm-up (allocations, page faults)
  }
  std::sort(ms.begin(), ms.end());
  CpuLayerTiming t;
  t.ms = ms[ms.size() / 2];
  t.gflops = 3.0 * static_cast<double>(batch) * layer_forward_flops(width, tokens) / (t.ms * 1e6);
  t.threads = omp_get_max_threads();
  return t;
}

}  // namespace starflow::jobs
