// Named model configurations, defined once: the paper's text-to-image models that `starflow plan` predicts for
// (the official code's published sizes), the CPU benchmark configs that `starflow bench` times against the
// PyTorch reference (which is handed the same config as JSON), and the demo's deep-shallow model.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/models/flow_config.h"

namespace starflow::core {

struct ModelPreset {
  std::string name;         // "3.86B", "279M", "bench-A", "bench-B", "demo"
  std::string description;  // one line for listings
  FlowConfig model;
  int64_t batch = 0;        // the global batch it is run or measured with
};

// Every preset, in the order listings show them.
const std::vector<ModelPreset>& model_presets();

// The preset of that name; throws std::invalid_argument naming the known ones otherwise.
const ModelPreset& model_preset(const std::string& name);

}  // namespace starflow::core
