// SLURM client commands run as child processes, with stdin fed and stdout/stderr drained together (poll),
// so that a chatty child can never block on a full pipe.
#include "slurm/cluster.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace starflow::slurm {
namespace {

std::runtime_error system_error(const std::string& call) {
  return std::runtime_error(call + " failed: " + std::strerror(errno));
}

// The last non-empty line of a text.
std::string last_line(const std::string& text) {
  std::istringstream in(text);
  std::string line, last;
  while (std::getline(in, line))
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  return last;
}

// The line of a client's stderr that says what went wrong, for one-line errors: the first "error:" line
// (SLURM's clients print "sbatch: error: ..."), else the first non-empty one.
std::string reason_line(const std::string& text) {
  std::istringstream in(text);
  std::string line, first;
  while (std::getline(in, line)) {
    if (line.find("error:") != std::string::npos) return line;
    if (first.empty() && line.find_first_not_of(" \t\r") != std::string::npos) first = line;
  }
  return first;
}

std::string describe_failure(const std::vector<std::string>& argv, const CommandResult& r) {
  if (r.status == 127 && r.err.empty()) return argv[0] + " could not be run (is SLURM installed and on PATH?)";
  const std::string reason = reason_line(r.err.empty() ? r.out : r.err);
  return argv[0] + " failed (status " + std::to_string(r.status) + ")" + (reason.empty() ? "" : ": " + reason);
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv, const std::string& input) {
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) || pipe2(out_pipe, O_CLOEXEC) || pipe2(err_pipe, O_CLOEXEC)) throw system_error("pipe2");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  for (int fd : {in_pipe[0], out_pipe[1], err_pipe[1]}) close(fd);
  CommandResult result;
  if (spawned != 0) {
    for (int fd : {in_pipe[1], out_pipe[0], err_pipe[0]}) close(fd);
    result.status = 127;
    result.err = argv[0] + ": " + std::strerror(spawned);
    return result;
  }
  // A child that exits without reading its stdin must not kill us with SIGPIPE.
  struct sigaction ignore {}, previous {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &previous);
  size_t written = 0;
  int in_fd = in_pipe[1];
  // Non-blocking, so that a write takes only what the pipe has room for and the outputs keep draining.
  fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
  if (input.empty()) {
    close(in_fd);
    in_fd = -1;
  }
  int open_outputs = 2;
  pollfd fds[3] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}, {in_fd, POLLOUT, 0}};
  while (open_outputs > 0 || in_fd >= 0) {
    fds[2].fd = in_fd;
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      throw system_error("poll");
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buffer[4096];
      const ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_outputs;
      }
    }
    if (in_fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t n = write(in_fd, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if ((n < 0 && errno != EINTR && errno != EAGAIN) || written == input.size()) {
        close(in_fd);
        in_fd = -1;
      }
    }
  }
  sigaction(SIGPIPE, &previous, nullptr);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw system_error("waitpid");
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::vector<std::string> list_partitions(std::string* default_partition) {
  const std::vector<std::string> argv = {"sinfo", "-h", "-o", "%P"};
  const CommandResult r = run_command(argv);
  if (r.status != 0) throw std::runtime_error(describe_failure(argv, r));
  std::vector<std::string> names;
  std::istringstream in(r.out);
  std::string name;
  if (default_partition) default_partition->clear();
  while (in >> name) {
    if (name.back() == '*') {
      name.pop_back();
      if (default_partition) *default_partition = name;
    }
    names.push_back(name);
  }
  return names;
}

std::vector<NodeGroup> partition_nodes(const std::string& partition) {
  const std::vector<std::string> argv = {"sinfo", "-h", "-p", partition, "-o", "%D %c %G"};
  const CommandResult r = run_command(argv);
  if (r.status != 0) throw std::runtime_error(describe_failure(argv, r));
  std::vector<NodeGroup> groups;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string nodes, cpus, gres;
    if (!(fields >> nodes >> cpus >> gres)) continue;
    NodeGroup g;
    g.nodes = std::stoll(nodes);
    g.cpus = std::stoll(cpus);  // "64+" (a group of unequal nodes) reads as its minimum
    // gres is "(null)" or a list like "gpu:8,nvme:1" / "gpu:h100:8(S:0-1)": the count ends each gpu entry.
    std::istringstream entries(gres);
    std::string entry;
    while (std::getline(entries, entry, ','))
      if (entry.rfind("gpu:", 0) == 0) {
        const std::string spec = entry.substr(0, entry.find('('));
        g.gpus += std::stoll(spec.substr(spec.rfind(':') + 1));
      }
    groups.push_back(g);
  }
  return groups;
}

std::string submit_batch_script(const std::string& script) {
  const std::vector<std::string> argv = {"sbatch", "--parsable"};
  const CommandResult r = run_command(argv, script);
  if (r.status != 0) throw std::runtime_error(describe_failure(argv, r));
  // --parsable prints "jobid" or "jobid;cluster".
  const std::string line = last_line(r.out);
  const std::string id = line.substr(0, line.find(';'));
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
    throw std::runtime_error("sbatch printed no job id (stdout: '" + line + "')");
  return id;
}

void requeue_job(const std::string& job_id) {
  const std::vector<std::string> argv = {"scontrol", "requeue", job_id};
  const CommandResult r = run_command(argv);
  if (r.status != 0) throw std::runtime_error(describe_failure(argv, r));
}

}  // namespace starflow::slurm
