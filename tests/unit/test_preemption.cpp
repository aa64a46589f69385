// The preemption flag: SIGUSR1 is counted by the listener's own thread, never by a thread that computes,
// and a storm of warnings during oneDNN's JIT GEMM leaves the heap intact (preemption.h says why it would not).
#include <gtest/gtest.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "core/ops/cpu/gemm.h"
#include "slurm/preemption.h"

namespace starflow::slurm {
namespace {

bool usr1_blocked_here() {
  sigset_t now;
  pthread_sigmask(SIG_BLOCK, nullptr, &now);
  return sigismember(&now, SIGUSR1) == 1;
}

// Sends a process-directed SIGUSR1 (what srun does) and waits until it has been counted.
bool warn_and_wait_for_count(int expected) {
  kill(getpid(), SIGUSR1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (stop_request_count() < expected && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return stop_request_count() == expected;
}

TEST(StopRequestListener, CountsWarningsOnItsOwnThreadOnly) {
  ASSERT_FALSE(usr1_blocked_here());
  {
    const StopRequestListener listener;
    EXPECT_TRUE(usr1_blocked_here());
    bool child_blocked = false;
    std::thread([&] { child_blocked = usr1_blocked_here(); }).join();
    EXPECT_TRUE(child_blocked) << "threads started after the listener must inherit the blocked mask";
    EXPECT_THROW(StopRequestListener second, std::logic_error);
    const int before = stop_request_count();
    ASSERT_TRUE(warn_and_wait_for_count(before + 1));
    EXPECT_TRUE(stop_requested());
    ASSERT_TRUE(warn_and_wait_for_count(before + 2)) << "a second warning changes nothing but the count";
  }
  // Closing consumed no warning of its own, and the mask is as it was.
  EXPECT_FALSE(usr1_blocked_here());
  const int after = stop_request_count();
  ASSERT_TRUE(warn_and_wait_for_count(after + 1)) << "a warning after the listener has gone still only counts";
  const StopRequestListener again;  // and a new listener can start
  ASSERT_TRUE(warn_and_wait_for_count(after + 2));
}

// What `starflow train` met on AVX-512 hosts: warnings landing while dnnl_sgemm runs its JIT kernel. With a
// plain handler this aborts in free() ("corrupted size vs. prev_size") or segfaults within a few hundred
// signals; run in a fresh process so no thread started by an earlier test has SIGUSR1 unblocked.
void gemm_under_a_storm_of_warnings() {
  const StopRequestListener listener;
  core::cpu::set_gemm_backend(core::cpu::GemmBackend::onednn);
  // One thread, as in the job that failed (a rank per CPU): oneDNN 2.6 then runs the whole product in the
  // calling thread's JIT kernel, and a plain handler fails this test within 50 ms on every run.
  omp_set_num_threads(1);
  std::atomic<bool> done{false};
  std::thread storm([&] {
    while (!done.load()) {
      kill(getpid(), SIGUSR1);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  // A training step's shapes (520 = 8 samples × 65 tokens): forward x·Wᵀ, backward dy·W and dyᵀ·x.
  const int64_t shapes[][3] = {{520, 192, 64}, {520, 64, 192}, {192, 64, 520}, {520, 64, 64}, {64, 64, 512}};
  const bool modes[][2] = {{false, true}, {false, false}, {true, false}};
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(400);
  int64_t wrong = 0;
  while (std::chrono::steady_clock::now() < until) {
    for (const auto& s : shapes) {
      const int64_t M = s[0], N = s[1], K = s[2];
      for (const auto& m : modes) {
        std::vector<float> a(M * K, 0.5f), b(K * N, 0.25f), c(M * N, -1.f);  // fresh heap chunks each time
        core::cpu::gemm<float>(m[0], m[1], M, N, K, 1.f, a.data(), m[0] ? M : K, b.data(), m[1] ? K : N, 0.f,
                               c.data(), N);
        // Every element is exactly K/8 in float: a clobbered register or workspace would show as a wrong one.
        for (float v : c) wrong += v != 0.125f * K;
      }
    }
  }
  done = true;
  storm.join();
  std::_Exit(wrong == 0 && stop_request_count() > 100 ? 0 : 3);
}

TEST(StopRequestListener, WarningsDuringOneDnnGemmLeaveTheHeapIntact) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(gemm_under_a_storm_of_warnings(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace starflow::slurm
