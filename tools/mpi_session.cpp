// MpiSession: MPI_Init_thread / MPI_Finalize for a command.
#include "tools/mpi_session.h"

#include "data/hdf5_check.h"

namespace starflow::tools {

MpiSession::MpiSession(int& argc, char**& argv, int thread_level) {
  MPI_Init_thread(&argc, &argv, thread_level, &provided_);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  // After MPI_Init: chained in front of Open MPI's fatal-signal handlers (its backtrace still follows).
  data::install_hdf5_crash_report(size_ > 1 ? rank_ : -1);
}

void MpiSession::finalize() {
  if (finalized_) return;
  finalized_ = true;
  MPI_Finalize();
}

}  // namespace starflow::tools
