// MPI for one command: initialised when the command needs it, finalised when it returns or throws, so that no
// command forgets MPI_Finalize on an error path (an unfinalised rank makes mpirun report the whole job failed).
#pragma once
#include <mpi.h>

namespace starflow::tools {

class MpiSession {
 public:
  // MPI_THREAD_MULTIPLE by default: the gradient all-reduce runs on its own thread
  // (parallel/gradient_buckets.h); with less it falls back to non-blocking collectives.
  MpiSession(int& argc, char**& argv, int thread_level = MPI_THREAD_MULTIPLE);
  ~MpiSession() { finalize(); }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }  // in MPI_COMM_WORLD
  int size() const { return size_; }
  int thread_level() const { return provided_; }
  // Early, where something must happen after MPI ends (a SLURM requeue); idempotent.
  void finalize();

 private:
  int rank_ = 0, size_ = 1, provided_ = 0;
  bool finalized_ = false;
};

}  // namespace starflow::tools
