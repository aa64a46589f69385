// MpiCommunicator. Large buffers go in chunks of at most 2^30 elements (MPI counts are int).
#include "parallel/mpi_communicator.h"

#include <algorithm>

#include "parallel/mpi_check.h"

namespace starflow::parallel {
namespace {
constexpr int64_t kMaxCount = int64_t(1) << 30;

template <class T>
void all_reduce(MPI_Comm comm, T* data, int64_t n, MPI_Datatype type, MPI_Op op) {
  for (int64_t at = 0; at < n; at += kMaxCount)
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, data + at, static_cast<int>(std::min(kMaxCount, n - at)), type, op, comm));
}
}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm) {
  mpiCheck(MPI_Comm_dup(comm, &comm_));
  mpiCheck(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  mpiCheck(MPI_Comm_rank(comm_, &rank_));
  mpiCheck(MPI_Comm_size(comm_, &size_));
}

MpiCommunicator::~MpiCommunicator() {
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiCommunicator::all_reduce_sum(float* data, int64_t n) { all_reduce(comm_, data, n, MPI_FLOAT, MPI_SUM); }
void MpiCommunicator::all_reduce_sum(double* data, int64_t n) { all_reduce(comm_, data, n, MPI_DOUBLE, MPI_SUM); }
void MpiCommunicator::all_reduce_max(double* data, int64_t n) { all_reduce(comm_, data, n, MPI_DOUBLE, MPI_MAX); }

void MpiCommunicator::broadcast(void* data, int64_t bytes, int root) {
  char* p = static_cast<char*>(data);
  for (int64_t at = 0; at < bytes; at += kMaxCount)
    mpiCheck(MPI_Bcast(p + at, static_cast<int>(std::min(kMaxCount, bytes - at)), MPI_BYTE, root, comm_));
}

void MpiCommunicator::barrier() { mpiCheck(MPI_Barrier(comm_)); }

}  // namespace starflow::parallel
