// The training job's side of preemption: SIGUSR1 (SLURM's warning before the time limit or a preemption,
// forwarded by the batch script) asks the job to stop at the next step boundary. Receiving it only counts it;
// everything else (agreeing across ranks, checkpointing, requeueing) happens in normal code, so a second
// signal arriving while the checkpoint is written cannot interrupt or corrupt it.
//
// Why a listening thread rather than a handler on whichever thread the kernel picks: a signal handler runs on
// the interrupted thread's stack, below its stack pointer. oneDNN's JIT f32 GEMM kernels (AVX2 and AVX-512)
// point rsp into a heap workspace while they run, so a handler that interrupts them writes its signal frame
// over the heap (oneDNN issue 4845, fixed upstream in 2026; Debian 12 ships oneDNN 2.6.3). `starflow train` on an AVX-512
// host with SIGUSR1 arriving mid-GEMM aborted with "corrupted size vs. prev_size". With SIGUSR1 blocked in
// every compute thread, only the listener, which runs no kernels, ever takes it.
#pragma once

#include <thread>

namespace starflow::slurm {

// While one exists, SIGUSR1 is taken by its own thread, never by a thread that computes.
// Construct it first thing in a command, before MPI, OpenMP or any library starts a thread: the calling
// thread blocks SIGUSR1 and every thread it creates later inherits that. Threads that existed before (a
// library's load-time pool) still count a signal through the fallback handler installed here.
// The destructor stops the listener and restores the calling thread's signal mask; one listener at a time.
// Throws std::runtime_error when the signal set-up fails.
class StopRequestListener {
 public:
  StopRequestListener();
  ~StopRequestListener();
  StopRequestListener(const StopRequestListener&) = delete;
  StopRequestListener& operator=(const StopRequestListener&) = delete;

 private:
  std::thread thread_;
};

// Whether SIGUSR1 has arrived since a listener was first constructed, and how many times.
bool stop_requested();
int stop_request_count();

}  // namespace starflow::slurm
