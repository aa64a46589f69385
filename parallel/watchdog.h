// The hang watchdog of a training job. The training loop reports its progress (step, phase) at every phase
// boundary; a monitor thread wakes every fraction of a second, and when no progress has come for the configured
// time (a rank stuck in a collective whose peer has died or stopped, a reader blocked on a dead mount, a kernel
// that never returns) it prints one line naming the rank, its host, the step and the phase, runs the abort hooks
// (ncclCommAbort on the GPU path) and ends the whole job with MPI_Abort and kExitCode, which the SLURM template
// treats as "requeue from the last checkpoint". One line per rank whose own progress stopped: the ranks waiting
// in the all-reduce name themselves and their phase. A rank that is stopped or dead says nothing; so that its
// absence need not be inferred, every timed-out monitor reports to rank 0's over a communicator of their own,
// and rank 0 names the ranks that did not answer within a few seconds before it aborts the job.
//
// Fault injection for the tests (tests/fault/): STARFLOW_FAULT="RANK:STEP:PHASE:ACTION[:SECONDS]" makes the
// world rank RANK, on reaching PHASE of step STEP, stop itself (SIGSTOP), kill itself (SIGKILL), sleep SECONDS or
// throw a std::runtime_error as a failed shard read would (ACTION stop|kill|sleep|error). Production runs leave it
// unset.
#pragma once
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace starflow::parallel {

enum class Phase : int { kStarting, kData, kForward, kBackward, kAllReduce, kOptimizer, kCheckpoint, kPreview, kBetweenSteps };

const char* phase_name(Phase phase);  // "data", "forward", "backward", "all-reduce", ...

struct FaultInjection {
  int rank = -1;  // -1: none
  int64_t step = 0;
  Phase phase = Phase::kData;
  std::string action;  // stop | kill | sleep | error
  double seconds = 0;
  // Parsed from STARFLOW_FAULT (empty or unset: none); std::invalid_argument naming the variable when malformed.
  static FaultInjection from_environment();
};

class Watchdog {
 public:
  // The exit status of a job ended by the watchdog (EX_TEMPFAIL): requeue from the last checkpoint.
  static constexpr int kExitCode = 75;

  // seconds <= 0: no monitor thread (progress() still runs the fault injection). `abort` ends the job (the
  // default: MPI_Abort(MPI_COMM_WORLD, kExitCode), then _exit). `comm`: the job's ranks, for the roll call of
  // a timeout (collective: every rank constructs its watchdog; MPI_COMM_NULL: none).
  Watchdog(double seconds, int rank, MPI_Comm comm = MPI_COMM_NULL, std::function<void()> abort = {});
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // The rank reached `phase` of step `step` (the optimiser steps taken before it).
  void progress(int64_t step, Phase phase);

  // Run before the job is aborted, in registration order (communicators that must be aborted first). Global:
  // the hook's owner unregisters it with the returned id before it goes away.
  static int add_abort_hook(std::function<void()> hook);
  static void remove_abort_hook(int id);

  const std::string& host() const { return host_; }
  // Every rank's host (rank 0 names the silent ones by host too).
  void set_hosts(std::vector<std::string> hosts) { hosts_ = std::move(hosts); }

 private:
  void monitor();
  // After a timeout: the other ranks report to rank 0, which prints the ranks that did not answer.
  void roll_call();

  double seconds_;
  int rank_;
  std::string host_;
  std::vector<std::string> hosts_;
  MPI_Comm comm_ = MPI_COMM_NULL;  // a duplicate of the job's communicator, used only by the roll call
  std::function<void()> abort_;
  FaultInjection fault_;
  std::atomic<int64_t> step_{0};
  std::atomic<int> phase_{0};
  std::atomic<int64_t> last_progress_ns_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace starflow::parallel
