// Asynchronous checkpoints: the trainer snapshots the pieces of its state that this rank writes into host
// memory at a step boundary and hands them here; a background thread writes the same single-file MPI-IO
// checkpoint (write_checkpoint) while training goes on. A 3.86B model with its AdamW moments is ~46 GB, and a
// synchronous write stops every GPU for the whole write; this way training is blocked only for the snapshot.
//
// The writer runs its collectives over its own duplicate of the world communicator (MPI_THREAD_MULTIPLE), so
// they never meet the training thread's. At most one write is in flight: the next checkpoint, a preemption or
// the end of training waits for it. A failed write is reported at the next step boundary on every rank alike
// (poll), and write_checkpoint's temp-file + rename leaves the previous checkpoint intact.
#pragma once
#include <mpi.h>

#include <atomic>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "jobs/checkpoint.h"

namespace starflow::jobs {

class BackgroundCheckpoint {
 public:
  // Collective over world (duplicates it). Requires MPI_THREAD_MULTIPLE (supported() says whether it is there).
  explicit BackgroundCheckpoint(MPI_Comm world);
  ~BackgroundCheckpoint();  // waits for a write in flight; never throws
  BackgroundCheckpoint(const BackgroundCheckpoint&) = delete;
  BackgroundCheckpoint& operator=(const BackgroundCheckpoint&) = delete;

  // Whether MPI was started with MPI_THREAD_MULTIPLE (otherwise the trainer writes synchronously).
  static bool supported();

  // Starts writing <dir>/ckpt_<step>.sfckpt from the tensors (their data must stay valid and unchanged until
  // the write has finished: the trainer's snapshot). No write may be in flight (call wait() first).
  void start(const std::string& dir, int64_t step, nlohmann::json meta, std::vector<CheckpointTensor> tensors,
             int keep);
  bool in_flight() const { return thread_.joinable(); }
  // Collective over world, at a step boundary while a write is in flight (every rank has one in flight then:
  // they start together). Returns true when every rank's write has finished (and joins it); throws the write's
  // error on every rank as soon as any rank's write failed.
  bool poll();
  // Waits for the write in flight, if any; throws its error (the same on every rank). Returns its path.
  std::string wait();
  // Wall time of the last finished write, from start() to its file's rename.
  double last_write_seconds() const { return write_seconds_; }

 private:
  enum State : int { kWriting = 0, kDone = 1, kFailed = 2 };
  MPI_Comm world_ = MPI_COMM_NULL, comm_ = MPI_COMM_NULL;
  std::thread thread_;
  std::atomic<int> state_{kDone};
  std::string error_, path_;
  double write_seconds_ = 0;
};

}  // namespace starflow::jobs
