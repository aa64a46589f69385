// Calibration of the training plan on this machine: one transformer layer's forward + backward timed on the CPU
// ops that training runs, as a measured efficiency for `starflow plan --calibrate-cpu`.
#pragma once
#include <cstdint>

namespace starflow::jobs {

struct CpuLayerTiming {
  double ms = 0;      // forward + backward of the layer, median
  double gflops = 0;  // counted FLOPs (3 × forward) per second
  int threads = 1;
};
// Times forward + backward of one transformer layer on the CPU ops training uses (core::StarFlowModel<float>
// with one block of one layer: the layer plus a negligible embedding and head) for `batch` samples of
// `tokens` image tokens (a square grid), the median of `repeats` runs after one warm-up.
CpuLayerTiming measure_cpu_layer(int64_t width, int64_t tokens, int64_t batch, int64_t head_dim, int repeats);

}  // namespace starflow::jobs
