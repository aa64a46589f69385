// The bench commands' --config A|B: the model presets bench-A and bench-B (core/models/model_presets.cpp), the
// configurations the CPU benchmarks time against the PyTorch reference (which is handed them as JSON).
#pragma once
#include <stdexcept>
#include <string>

#include "core/models/model_presets.h"

namespace starflow::tools {

inline const core::ModelPreset& bench_preset(const std::string& name) {
  if (name != "A" && name != "B") throw std::invalid_argument("unknown bench config '" + name + "' (expected A or B)");
  return core::model_preset("bench-" + name);
}

}  // namespace starflow::tools
