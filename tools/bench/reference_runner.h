// Runs the project's PyTorch statement of the model (tools/torch_reference, with Debian's
// python3-torch) as a child process that times one run per request, so that a benchmark's runs and the
// reference's take turns: load that drifts on a shared machine then slows both sides alike.
#pragma once
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace starflow::tools {

struct TurnTimes {
  std::vector<double> ours, reference;  // ms of the timed runs; `reference` empty without a reference
  std::string error;                    // why there are no reference times, when it was asked for
};

// `runs` turns, ours first: each side does an untimed run, then a timed one, so that every timed run finds
// its own side's data in the caches, as in a loop. reference_args (the reference's --bench options) null, or a
// reference that cannot start or fails (`reference` empty, `error` says why): one untimed run of ours, then
// `runs` timed ones.
TurnTimes take_turns(const std::vector<std::string>* reference_args, int runs, const std::function<double()>& ours_once);

// tools/torch_reference --serve: the reference builds its model and warms up once, then times one run per
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
