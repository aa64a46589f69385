// popen() the reference script; its stderr passes through so the user sees why it refused to run.
#include "tools/bench/reference_runner.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace starflow::tools {

std::optional<std::string> run_torch_reference(const std::vector<std::string>& args, std::string& error) {
  const char* env = std::getenv("STARFLOW_TORCH_REFERENCE");
  const std::string script = env ? env : std::string(STARFLOW_SOURCE_DIR) + "/tools/bench/torch_reference.py";
  if (!std::filesystem::exists(script)) {
    error = script + ": reference script not found (set STARFLOW_TORCH_REFERENCE)";
    return std::nullopt;
  }
  std::string cmd = "/usr/bin/python3 '" + script + "'";
  for (const std::string& a : args) cmd += " '" + a + "'";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) {
    error = "cannot start /usr/bin/python3";
    return std::nullopt;
  }
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = std::fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  const int status = pclose(pipe);
  if (status != 0) {
    error = "PyTorch reference exited with status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return std::nullopt;
  }
  // The JSON result is the last non-empty line.
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  const size_t nl = out.rfind('\n');
  return nl == std::string::npos ? out : out.substr(nl + 1);
}

}  // namespace starflow::tools
