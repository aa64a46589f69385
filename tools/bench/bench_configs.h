// The bench commands' --config A|B: the model presets bench-A and bench-B (core/models/model_presets.cpp), the
// configurations the CPU benchmarks time against the PyTorch reference (which is handed them as JSON).
#pragma once
#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "core/models/model_presets.h"

namespace starflow::tools {

inline const core::ModelPreset& bench_preset(const std::string& name) {
  if (name != "A" && name != "B") throw std::invalid_argument("unknown bench config '" + name + "' (expected A or B)");
  return core::model_preset("bench-" + name);
}

// The preset with official config keys replaced (`--set KEY=VALUE`): VALUE is read as JSON where it parses
// (1, true, 4) and as a string otherwise (rms_norm); FlowConfig's own checks judge keys and values.
inline core::FlowConfig with_official_overrides(const core::FlowConfig& base, const std::vector<std::string>& sets) {
  nlohmann::json j = nlohmann::json::parse(base.to_official_json());
  for (const std::string& s : sets) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0) throw std::invalid_argument("--set " + s + ": expected KEY=VALUE");
    const std::string key = s.substr(0, eq), value = s.substr(eq + 1);
    nlohmann::json parsed = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
    j[key] = parsed.is_discarded() ? nlohmann::json(value) : parsed;
  }
  return core::FlowConfig::from_official_json(j.dump());
}

}  // namespace starflow::tools
