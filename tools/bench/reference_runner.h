// Runs the project's PyTorch statement of the model (tools/bench/torch_reference.py, Debian's
// python3-torch) as a child process: either to completion, returning the one JSON line it prints, or as a
// session that times one run per request, so a benchmark can alternate its own runs with the reference's.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace starflow::tools {

// Returns the JSON text, or nullopt with `error` set (script missing, torch missing, netlib BLAS, ...).
std::optional<std::string> run_torch_reference(const std::vector<std::string>& args, std::string& error);

// torch_reference.py --serve: the reference builds its model and warms up once, then times one run per
// run_once(). finish() ends the session and returns the reference's JSON summary of those runs.
class ReferenceSession {
 public:
  // nullopt with `error` set when the script cannot start or does not report ready.
  static std::optional<ReferenceSession> start(const std::vector<std::string>& args, std::string& error);
  ReferenceSession(ReferenceSession&& other) noexcept;
  ReferenceSession& operator=(ReferenceSession&&) = delete;
  ~ReferenceSession();

  // The reference's wall time for one run, in ms; nullopt with `error` set if it failed.
  std::optional<double> run_once(std::string& error);
  std::optional<std::string> finish(std::string& error);

 private:
  ReferenceSession() = default;
  std::optional<std::string> read_line(std::string& error);
  bool close_and_wait(std::string& error);
  pid_t pid_ = -1;
  int to_child_ = -1, from_child_ = -1;
  std::string buffered_;
};

}  // namespace starflow::tools
