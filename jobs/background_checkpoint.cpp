#include "jobs/background_checkpoint.h"

#include <omp.h>

#include <chrono>
#include <stdexcept>

#include "parallel/error_agreement.h"
#include "parallel/mpi_check.h"

namespace starflow::jobs {

BackgroundCheckpoint::BackgroundCheckpoint(MPI_Comm world) : world_(world) {
  mpiCheck(MPI_Comm_dup(world, &comm_));
}

BackgroundCheckpoint::~BackgroundCheckpoint() {
  if (thread_.joinable()) thread_.join();
  if (comm_ != MPI_COMM_NULL) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
}

bool BackgroundCheckpoint::supported() {
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  return level == MPI_THREAD_MULTIPLE;
}

void BackgroundCheckpoint::start(const std::string& dir, int64_t step, nlohmann::json meta,
                                 std::vector<CheckpointTensor> tensors, int keep) {
  if (thread_.joinable()) throw std::logic_error("BackgroundCheckpoint::start: a write is already in flight");
  state_ = kWriting;
  error_.clear();
  path_.clear();
  thread_ = std::thread([this, dir, step, meta = std::move(meta), tensors = std::move(tensors), keep] {
    // The training thread's OpenMP team owns the cores; the CRC-32s here run on one (~3.6 GB/s, more than
    // one rank's share of a parallel file system's bandwidth).
    omp_set_num_threads(1);
    const auto t0 = std::chrono::steady_clock::now();
    try {
      path_ = write_checkpoint(comm_, dir, step, meta, tensors, keep);
      write_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      state_ = kDone;
    } catch (const std::exception& e) {
      error_ = e.what();
      state_ = kFailed;
    }
  });
}

bool BackgroundCheckpoint::poll() {
  if (!thread_.joinable()) return true;
  const int s = state_.load();
  int flags[2] = {s == kFailed ? 1 : 0, s == kWriting ? 1 : 0};  // any failed, any still writing
  mpiCheck(MPI_Allreduce(MPI_IN_PLACE, flags, 2, MPI_INT, MPI_MAX, world_));
  if (flags[0] == 0 && flags[1] != 0) return false;
  // Failed somewhere: write_checkpoint agrees on its errors, so every rank's write ends with the same one.
  wait();
  return true;
}

std::string BackgroundCheckpoint::wait() {
  if (!thread_.joinable()) return path_;
  thread_.join();
  if (state_ == kFailed)  // agreed: every rank's write ended with this error
    throw parallel::AgreedError("checkpoint write failed (the previous checkpoints are intact): " + error_);
  return path_;
}

}  // namespace starflow::jobs
