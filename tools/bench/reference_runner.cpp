// The PyTorch reference (python3 tools/torch_reference) as a child process; its stderr passes through so the
// user sees why it refused to run.
#include "tools/bench/reference_runner.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace starflow::tools {
namespace {

// The folder tools/torch_reference (python3 runs its __main__.py), or STARFLOW_TORCH_REFERENCE (a folder or one
// script). It is passed to /usr/bin/python3 as an argument, never exec'd itself: a folder cannot be.
std::optional<std::string> reference_script(std::string& error) {
  const char* env = std::getenv("STARFLOW_TORCH_REFERENCE");
  const std::string script = env ? env : std::string(STARFLOW_SOURCE_DIR) + "/tools/torch_reference";
  if (!std::filesystem::exists(script)) {
    error = script + ": PyTorch reference not found (set STARFLOW_TORCH_REFERENCE)";
    return std::nullopt;
  }
  return script;
}

std::string exit_description(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by ") + strsignal(WTERMSIG(status));
  return "ended abnormally";
}

}  // namespace

std::optional<ReferenceSession> ReferenceSession::start(const std::vector<std::string>& args, std::string& error) {
  const auto script = reference_script(error);
  if (!script) return std::nullopt;
  signal(SIGPIPE, SIG_IGN);  // a reference that died makes our next request fail with EPIPE, not kill us
  int down[2], up[2];  // down: our requests to its stdin; up: its stdout to us
  if (pipe(down) != 0 || pipe(up) != 0) {
    error = std::string("pipe: ") + std::strerror(errno);
    return std::nullopt;
  }
  std::vector<std::string> argv_s = {"/usr/bin/python3", *script};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  argv_s.push_back("--serve");
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    error = std::string("fork: ") + std::strerror(errno);
    return std::nullopt;
  }
  if (pid == 0) {
    dup2(down[0], STDIN_FILENO);
    dup2(up[1], STDOUT_FILENO);
    for (int fd : {down[0], down[1], up[0], up[1]}) close(fd);
    execv(argv[0], argv.data());
    std::fprintf(stderr, "cannot start /usr/bin/python3: %s\n", std::strerror(errno));
    _exit(127);
  }
  close(down[0]);
  close(up[1]);
  ReferenceSession s;
  s.pid_ = pid;
  s.to_child_ = down[1];
  s.from_child_ = up[0];
  // Lines before "ready" (none expected) are skipped; EOF means the script refused (its reason is on stderr).
  while (true) {
    const auto line = s.read_line(error);
    if (!line) {
      std::string ignored;
      s.close_and_wait(ignored);
      error = "PyTorch reference did not start: " + error;
      return std::nullopt;
    }
    if (*line == "ready") break;
  }
  return s;
}

ReferenceSession::ReferenceSession(ReferenceSession&& o) noexcept
    : pid_(o.pid_), to_child_(o.to_child_), from_child_(o.from_child_), buffered_(std::move(o.buffered_)) {
  o.pid_ = -1;
  o.to_child_ = o.from_child_ = -1;
}

ReferenceSession::~ReferenceSession() {
  if (pid_ > 0) {  // an unfinished session (an error on our side): stop the child, do not leave it behind
    kill(pid_, SIGTERM);
    std::string ignored;
    close_and_wait(ignored);
  }
}

std::optional<std::string> ReferenceSession::read_line(std::string& error) {
  while (true) {
    const size_t nl = buffered_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      return line;
    }
    char buf[4096];
    const ssize_t n = read(from_child_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = n < 0 ? std::string("read: ") + std::strerror(errno) : "its output ended";
      return std::nullopt;
    }
    buffered_.append(buf, static_cast<size_t>(n));
  }
}

std::optional<double> ReferenceSession::run_once(std::string& error) {
  static const char request[] = "run\n";
  if (write(to_child_, request, sizeof request - 1) != static_cast<ssize_t>(sizeof request - 1)) {
    error = std::string("PyTorch reference: write: ") + std::strerror(errno);
    return std::nullopt;
  }
  const auto line = read_line(error);
  if (!line) {
    error = "PyTorch reference: " + error;
    return std::nullopt;
  }
  char* end = nullptr;
  const double ms = std::strtod(line->c_str(), &end);
  if (end == line->c_str() || ms <= 0) {
    error = "PyTorch reference: unexpected reply '" + *line + "'";
    return std::nullopt;
  }
  return ms;
}

bool ReferenceSession::close_and_wait(std::string& error) {
  if (to_child_ >= 0) close(to_child_);
  to_child_ = -1;
  int status = 0;
  const pid_t pid = pid_;
  pid_ = -1;
  while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (from_child_ >= 0) close(from_child_);
  from_child_ = -1;
  if (pid > 0 && status != 0) {
    error = "PyTorch reference " + exit_description(status);
    return false;
  }
  return true;
}

std::optional<std::string> ReferenceSession::finish(std::string& error) {
  close(to_child_);  // EOF on its stdin: it prints the summary and exits
  to_child_ = -1;
  std::string json, err;
  while (const auto line = read_line(err))
    if (!line->empty()) json = *line;
  if (!close_and_wait(error)) return std::nullopt;
  if (json.empty()) {
    error = "PyTorch reference printed no summary";
    return std::nullopt;
  }
  return json;
}

TurnTimes take_turns(const std::vector<std::string>* reference_args, int runs, const std::function<double()>& ours_once) {
  TurnTimes t;
  std::optional<ReferenceSession> session =
      reference_args ? ReferenceSession::start(*reference_args, t.error) : std::nullopt;
  bool reference_ok = session.has_value();
  for (int r = 0; r < runs; ++r) {
    if (r == 0 || reference_ok) ours_once();  // alone, our runs follow each other: one warm-up is enough
    t.ours.push_back(ours_once());
    if (reference_ok) {
      const auto warm = session->run_once(t.error);
      const auto timed = warm ? session->run_once(t.error) : std::nullopt;
      if (timed) t.reference.push_back(*timed);
      else reference_ok = false;
    }
  }
  if (session) {
    std::string finish_error;
    if (!session->finish(finish_error) && reference_ok) reference_ok = false, t.error = finish_error;
  }
  if (!reference_ok) t.reference.clear();
  return t;
}

}  // namespace starflow::tools
