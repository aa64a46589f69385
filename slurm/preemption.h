// The training job's side of preemption: SIGUSR1 (SLURM's warning before the time limit or a preemption,
// forwarded by the batch script) asks the job to stop at the next step boundary. The handler only sets a
// flag; everything else (agreeing across ranks, checkpointing, requeueing) happens in normal code, so a
// second signal arriving while the checkpoint is written cannot interrupt or corrupt it.
#pragma once

namespace starflow::slurm {

// Installs the flag-setting handler for SIGUSR1 (SA_RESTART, so interrupted system calls resume).
// Throws std::runtime_error when sigaction fails.
void install_stop_request_handler();

// Whether SIGUSR1 has arrived since the handler was installed, and how many times.
bool stop_requested();
int stop_request_count();

}  // namespace starflow::slurm
