// Runs the project's PyTorch statement of the model (tools/bench/torch_reference.py, Debian's
// python3-torch) as a child process and returns the one JSON line it prints.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace starflow::tools {

// Returns the JSON text, or nullopt with `error` set (script missing, torch missing, netlib BLAS, ...).
std::optional<std::string> run_torch_reference(const std::vector<std::string>& args, std::string& error);

}  // namespace starflow::tools
