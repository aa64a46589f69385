// The SIGUSR1 handler: async-signal-safe by doing nothing but a lock-free atomic increment.
#include "slurm/preemption.h"

#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace starflow::slurm {
namespace {

std::atomic<int> stop_requests{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free counter");

void on_stop_request(int) { stop_requests.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

void install_stop_request_handler() {
  struct sigaction action {};
  action.sa_handler = on_stop_request;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  if (sigaction(SIGUSR1, &action, nullptr) != 0)
    throw std::runtime_error(std::string("sigaction(SIGUSR1) failed: ") + std::strerror(errno));
}

bool stop_requested() { return stop_requests.load(std::memory_order_relaxed) > 0; }
int stop_request_count() { return stop_requests.load(std::memory_order_relaxed); }

}  // namespace starflow::slurm
