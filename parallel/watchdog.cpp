// Watchdog: the monitor thread, the abort path and the fault injection (see watchdog.h).
#include "parallel/watchdog.h"

#include <mpi.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

namespace starflow::parallel {

namespace {

constexpr const char* kPhaseNames[] = {"starting", "data",        "forward", "backward",     "all-reduce",
                                       "optimizer", "checkpoint", "preview", "between steps"};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::mutex& hooks_mutex() {
  static std::mutex m;
  return m;
}

std::map<int, std::function<void()>>& hooks() {
  static std::map<int, std::function<void()>> h;
  return h;
}

}  // namespace

const char* phase_name(Phase phase) { return kPhaseNames[static_cast<int>(phase)]; }

FaultInjection FaultInjection::from_environment() {
  FaultInjection f;
  const char* env = std::getenv("STARFLOW_FAULT");
  if (!env || !*env) return f;
  const std::string text = env;
  auto bad = [&](const std::string& why) {
    return std::invalid_argument("STARFLOW_FAULT='" + text + "': " + why +
                                 " (expected RANK:STEP:PHASE:stop|kill|sleep|error[:SECONDS])");
  };
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, ':')) parts.push_back(part);
  if (parts.size() < 4 || parts.size() > 5) throw bad("4 or 5 fields");
  try {
    f.rank = std::stoi(parts[0]);
    f.step = std::stoll(parts[1]);
    if (parts.size() == 5) f.seconds = std::stod(parts[4]);
  } catch (const std::exception&) {
    throw bad("RANK, STEP and SECONDS are numbers");
  }
  bool known = false;
  for (int p = 0; p < static_cast<int>(std::size(kPhaseNames)); ++p)
    if (parts[2] == kPhaseNames[p]) {
      f.phase = static_cast<Phase>(p);
      known = true;
    }
  if (!known) throw bad("unknown phase '" + parts[2] + "'");
  f.action = parts[3];
  if (f.action != "stop" && f.action != "kill" && f.action != "sleep" && f.action != "error")
    throw bad("unknown action '" + f.action + "'");
  return f;
}

Watchdog::Watchdog(double seconds, int rank, MPI_Comm comm, std::function<void()> abort)
    : seconds_(seconds), rank_(rank), abort_(std::move(abort)), fault_(FaultInjection::from_environment()) {
  if (comm != MPI_COMM_NULL && seconds_ > 0) MPI_Comm_dup(comm, &comm_);
  char name[256] = {};
  host_ = ::gethostname(name, sizeof name - 1) == 0 ? name : "unknown";
  if (!abort_) abort_ = [] { MPI_Abort(MPI_COMM_WORLD, kExitCode); };
  last_progress_ns_ = now_ns();
  if (seconds_ > 0) thread_ = std::thread([this] { monitor(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void Watchdog::progress(int64_t step, Phase phase) {
  step_.store(step, std::memory_order_relaxed);
  phase_.store(static_cast<int>(phase), std::memory_order_relaxed);
  last_progress_ns_.store(now_ns(), std::memory_order_release);
  if (fault_.rank == rank_ && fault_.step == step && fault_.phase == phase) {
    std::fprintf(stderr, "starflow fault injection: rank %d, step %lld, %s: %s\n", rank_, (long long)step,
                 phase_name(phase), fault_.action.c_str());
    std::fflush(stderr);
    fault_.rank = -1;  // once
    if (fault_.action == "stop") std::raise(SIGSTOP);
    if (fault_.action == "kill") std::raise(SIGKILL);
    if (fault_.action == "sleep") std::this_thread::sleep_for(std::chrono::duration<double>(fault_.seconds));
    if (fault_.action == "error")
      throw std::runtime_error("injected fault: an I/O error on rank " + std::to_string(rank_) + " at step " +
                               std::to_string(step) + " in phase " + phase_name(phase));
  }
}

int Watchdog::add_abort_hook(std::function<void()> hook) {
  std::lock_guard<std::mutex> lock(hooks_mutex());
  const int id = hooks().empty() ? 1 : hooks().rbegin()->first + 1;
  hooks()[id] = std::move(hook);
  return id;
}

void Watchdog::remove_abort_hook(int id) {
  std::lock_guard<std::mutex> lock(hooks_mutex());
  hooks().erase(id);
}

void Watchdog::roll_call() {
  if (comm_ == MPI_COMM_NULL) return;
  int size = 1;
  MPI_Comm_size(comm_, &size);
  if (size < 2) return;
  // The other ranks' monitors time out within a poll or two of this one (they wait on the same collective);
  // a rank that has not answered after this long is stopped, dead, or hung outside MPI with its monitor.
  constexpr double kGraceSeconds = 5;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(kGraceSeconds);
  constexpr int kTag = 7507;
  if (rank_ != 0) {
    int64_t report[2] = {step_.load(), phase_.load()};
    MPI_Request request;
    MPI_Isend(report, 2, MPI_INT64_T, 0, kTag, comm_, &request);
    int done = 0;
    while (!done && std::chrono::steady_clock::now() < deadline) {
      MPI_Test(&request, &done, MPI_STATUS_IGNORE);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // Give rank 0 the time to collect the others before this rank's abort ends the job.
    std::this_thread::sleep_until(deadline + std::chrono::seconds(2));
    return;
  }
  std::vector<int64_t> reports(static_cast<size_t>(2 * size), -1);
  std::vector<MPI_Request> requests(static_cast<size_t>(size), MPI_REQUEST_NULL);
  for (int r = 1; r < size; ++r) MPI_Irecv(&reports[2 * r], 2, MPI_INT64_T, r, kTag, comm_, &requests[r]);
  std::vector<int> answered(static_cast<size_t>(size), 0);
  answered[0] = 1;
  while (std::chrono::steady_clock::now() < deadline) {
    bool all = true;
    for (int r = 1; r < size; ++r) {
      if (!answered[r]) MPI_Test(&requests[r], &answered[r], MPI_STATUS_IGNORE);
      all = all && answered[r];
    }
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::string silent;
  for (int r = 1; r < size; ++r)
    if (!answered[r]) {
      if (!silent.empty()) silent += ", ";
      silent += std::to_string(r);
      if (static_cast<size_t>(r) < hosts_.size()) silent += " (" + hosts_[r] + ")";
    }
  if (silent.empty())
    std::fprintf(stderr, "starflow watchdog: every rank answered rank 0's roll call: all are waiting (a collective "
                         "that never completes, or a device that hangs)\n");
  else
    std::fprintf(stderr, "starflow watchdog: ranks that did not answer rank 0's roll call within %.0f s (stopped, "
                         "dead, or hung outside MPI): %s\n", kGraceSeconds, silent.c_str());
  std::fflush(stderr);
}

void Watchdog::monitor() {
  // Polls a few times per limit (at most every second): the job ends within the limit plus one poll.
  const auto poll = std::chrono::duration<double>(std::min(1.0, seconds_ / 4));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, poll, [this] { return stopping_; })) {
    const double idle = double(now_ns() - last_progress_ns_.load(std::memory_order_acquire)) * 1e-9;
    if (idle < seconds_) continue;
    std::fprintf(stderr,
                 "starflow watchdog: rank %d on %s made no progress for %.0f s (limit %.0f s) at step %lld in phase "
                 "%s; aborting the job with exit status %d (requeue from the last checkpoint)\n",
                 rank_, host_.c_str(), idle, seconds_, (long long)step_.load(), phase_name(Phase(phase_.load())),
                 kExitCode);
    std::fflush(stderr);
    roll_call();
    {
      std::lock_guard<std::mutex> hooks_lock(hooks_mutex());
      for (auto& [id, hook] : hooks()) hook();
    }
    abort_();
    std::_Exit(kExitCode);  // if the abort returned (no MPI)
  }
}

}  // namespace starflow::parallel
