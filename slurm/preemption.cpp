// SIGUSR1 taken by a dedicated thread (sigwait) instead of interrupting a compute thread; see preemption.h.
#include "slurm/preemption.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace starflow::slurm {
namespace {

std::atomic<int> stop_requests{0};
std::atomic<bool> closing{false};
std::atomic<bool> listening{false};
sigset_t saved_mask;
static_assert(std::atomic<int>::is_always_lock_free, "the fallback handler needs a lock-free counter");

// Only for threads that were started before the listener and so still have SIGUSR1 unblocked.
void count_stop_request(int) { stop_requests.fetch_add(1, std::memory_order_relaxed); }

sigset_t usr1_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  return set;
}

[[noreturn]] void fail(const char* call, int err) {
  throw std::runtime_error(std::string(call) + "(SIGUSR1) failed: " + std::strerror(err));
}

}  // namespace

StopRequestListener::StopRequestListener() {
  if (listening.exchange(true)) throw std::logic_error("StopRequestListener: one is already listening");
  struct sigaction action {};
  action.sa_handler = count_stop_request;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  if (sigaction(SIGUSR1, &action, nullptr) != 0) {
    listening = false;
    fail("sigaction", errno);
  }
  const sigset_t set = usr1_set();
  if (const int err = pthread_sigmask(SIG_BLOCK, &set, &saved_mask); err != 0) {
    listening = false;
    fail("pthread_sigmask", err);
  }
  closing = false;
  thread_ = std::thread([set] {
    for (;;) {
      int signal = 0;
      if (sigwait(&set, &signal) != 0) continue;  // EINTR only: the set is valid
      if (closing.load(std::memory_order_acquire)) return;
      stop_requests.fetch_add(1, std::memory_order_relaxed);
    }
  });
}

StopRequestListener::~StopRequestListener() {
  closing.store(true, std::memory_order_release);
  // Directed at the listener alone, so it cannot be taken for a warning: sigwait returns and sees `closing`.
  pthread_kill(thread_.native_handle(), SIGUSR1);
  thread_.join();
  pthread_sigmask(SIG_SETMASK, &saved_mask, nullptr);  // a warning still pending now goes to the handler
  listening = false;
}

bool stop_requested() { return stop_requests.load(std::memory_order_relaxed) > 0; }
int stop_request_count() { return stop_requests.load(std::memory_order_relaxed); }

}  // namespace starflow::slurm
