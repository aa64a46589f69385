// `starflow bench train|sample --device cuda`: the training step and the sampler of the CUDA model, timed on
// one GPU and compared with the official PyTorch code's published figures on an H200 (the anchors below).
// Built only where the CUDA backend is (tools/gpu/ is compiled with it, and STARFLOW_HAVE_CUDA defined).
#pragma once
#include <cstdint>
#include <string>

namespace starflow::tools {

struct GpuBenchOptions {
  std::string preset = "279M";  // a model preset (core/models/model_presets.cpp)
  int64_t batch = 0;            // 0: the preset's anchor batch (8 for 3.86B, 64 for 279M)
  std::string precision = "bf16";
  int steps = 5;                // timed steps (train) or runs (sample), after one untimed
  bool recompute = false;       // layer recompute (train)
  double cfg = 3.0;             // guidance (sample)
  std::string results;          // append one JSON line per measurement to this file ("": none)
};

int bench_train_gpu(const GpuBenchOptions& options);
int bench_sample_gpu(const GpuBenchOptions& options);

}  // namespace starflow::tools
