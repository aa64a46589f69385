// NcclCommunicator. Construction agrees on every rank's readiness over MPI before NCCL is touched, so a rank
// without a GPU makes all ranks fail with the same message instead of leaving the others waiting.
#include "parallel/nccl_communicator.h"
#include "parallel/watchdog.h"

#include <stdexcept>
#include <string>

#include "parallel/mpi_check.h"
#include "parallel/nccl_check.h"

namespace starflow::parallel {
namespace {

ncclDataType_t nccl_type(core::ElementType type) {
  switch (type) {
    case core::ElementType::F32: return ncclFloat32;
    case core::ElementType::F64: return ncclFloat64;
    case core::ElementType::BF16: return ncclBfloat16;
  }
  throw std::invalid_argument("NcclCommunicator: unknown element type");
}

// A collective enqueued on a stream: complete once an event recorded after it has fired.
class EventPending final : public core::PendingCollective {
 public:
  explicit EventPending(cudaStream_t stream) {
    cudaCheck(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
    cudaCheck(cudaEventRecord(event_, stream));
  }
  ~EventPending() override {
    if (event_) {
      cudaEventSynchronize(event_);
      cudaEventDestroy(event_);
    }
  }
  void wait() override { cudaCheck(cudaEventSynchronize(event_)); }
  bool test() override {
    const cudaError_t e = cudaEventQuery(event_);
    if (e == cudaErrorNotReady) return false;
    cudaCheck(e);
    return true;
  }

 private:
  cudaEvent_t event_ = nullptr;
};

// Rank 0's unique id and whether it could make one, broadcast as one message.
struct IdMessage {
  int ok = 0;
  ncclUniqueId id{};
};

}  // namespace

int select_local_device(MPI_Comm comm) {
  MPI_Comm node = MPI_COMM_NULL;
  mpiCheck(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  int local_rank = 0;
  const int rc = MPI_Comm_rank(node, &local_rank);
  MPI_Comm_free(&node);
  mpiCheck(rc);
  int devices = 0;
  cudaCheck(cudaGetDeviceCount(&devices));
  if (devices < 1) throw std::runtime_error("select_local_device: no CUDA device is visible");
  const int device = local_rank % devices;
  cudaCheck(cudaSetDevice(device));
  return device;
}

NcclCommunicator::NcclCommunicator(MPI_Comm comm, cudaStream_t stream) {
  mpiCheck(MPI_Comm_rank(comm, &rank_));
  mpiCheck(MPI_Comm_size(comm, &size_));
  // Every rank must have a device before any rank enters ncclCommInitRank (which waits for all of them).
  std::string local_error;
  if (const cudaError_t e = cudaGetDevice(&device_); e != cudaSuccess)
    local_error = std::string("cudaGetDevice: ") + cudaGetErrorString(e);
  int ready = local_error.empty() ? 1 : 0, all_ready = 0;
  mpiCheck(MPI_Allreduce(&ready, &all_ready, 1, MPI_INT, MPI_MIN, comm));
  if (!all_ready)
    throw std::runtime_error("NcclCommunicator: " +
                             (local_error.empty() ? std::string("another rank has no usable CUDA device")
                                                  : "rank " + std::to_string(rank_) + " has no usable CUDA device (" +
                                                        local_error + ")"));
  IdMessage message;
  std::string id_error;
  if (rank_ == 0) {
    const ncclResult_t r = ncclGetUniqueId(&message.id);
    message.ok = r == ncclSuccess;
    if (!message.ok) id_error = ncclGetErrorString(r);
  }
  mpiCheck(MPI_Bcast(&message, sizeof message, MPI_BYTE, 0, comm));
  if (!message.ok)
    throw std::runtime_error("NcclCommunicator: rank 0 could not create the NCCL unique id" +
                             (id_error.empty() ? std::string() : ": " + id_error));

  if (stream) {
    stream_ = stream;
  } else {
    cudaCheck(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    owns_stream_ = true;
  }
  try {
    cudaCheck(cudaMalloc(&barrier_word_, sizeof(float)));
    cudaCheck(cudaMemset(barrier_word_, 0, sizeof(float)));
    ncclCheck(ncclCommInitRank(&comm_, size_, message.id, rank_));
    // A hung collective (a peer stopped or dead) never returns by itself: the watchdog aborts the communicator
    // first, so the kernels waiting on it end and the process can exit (parallel/watchdog.h).
    ncclComm_t comm = comm_;
    abort_hook_ = Watchdog::add_abort_hook([comm] { ncclCommAbort(comm); });
  } catch (...) {
    if (barrier_word_) cudaFree(barrier_word_);
    if (owns_stream_) cudaStreamDestroy(stream_);
    throw;
  }
}

NcclCommunicator::~NcclCommunicator() {
  // No throwing here: a failed teardown cannot be acted on, and the process is usually ending.
  if (abort_hook_) Watchdog::remove_abort_hook(abort_hook_);
  if (comm_) {
    ncclCommFinalize(comm_);
    ncclCommDestroy(comm_);
  }
  if (barrier_word_) cudaFree(barrier_word_);
  if (owns_stream_ && stream_) cudaStreamDestroy(stream_);
}

void NcclCommunicator::enqueue_all_reduce(void* data, int64_t n, ncclDataType_t type, ncclRedOp_t op,
                                          cudaStream_t stream) {
  if (n < 0) throw std::invalid_argument("NcclCommunicator: negative element count");
  ncclCheck(ncclAllReduce(data, data, static_cast<size_t>(n), type, op, comm_, stream));
}

core::Pending NcclCommunicator::pending_on(cudaStream_t stream) { return std::make_unique<EventPending>(stream); }

void NcclCommunicator::synchronize() { cudaCheck(cudaStreamSynchronize(stream_)); }

void NcclCommunicator::all_reduce_sum(float* data, int64_t n) {
  enqueue_all_reduce(data, n, ncclFloat32, ncclSum, stream_);
  synchronize();
}

void NcclCommunicator::all_reduce_sum(double* data, int64_t n) {
  enqueue_all_reduce(data, n, ncclFloat64, ncclSum, stream_);
  synchronize();
}

void NcclCommunicator::all_reduce_max(double* data, int64_t n) {
  enqueue_all_reduce(data, n, ncclFloat64, ncclMax, stream_);
  synchronize();
}

void NcclCommunicator::all_reduce_sum(void* data, int64_t n, core::ElementType type, core::Stream stream) {
  enqueue_all_reduce(data, n, nccl_type(type), ncclSum, stream_of(stream));
}

core::Pending NcclCommunicator::all_reduce_sum_async(void* data, int64_t n, core::ElementType type,
                                                     core::Stream stream) {
  const cudaStream_t s = stream_of(stream);
  enqueue_all_reduce(data, n, nccl_type(type), ncclSum, s);
  return pending_on(s);
}

core::Pending NcclCommunicator::reduce_scatter_sum_async(const void* send, void* recv, int64_t n,
                                                         core::ElementType type, core::Stream stream) {
  if (n < 0) throw std::invalid_argument("NcclCommunicator: negative element count");
  const cudaStream_t s = stream_of(stream);
  ncclCheck(ncclReduceScatter(send, recv, static_cast<size_t>(n), nccl_type(type), ncclSum, comm_, s));
  return pending_on(s);
}

core::Pending NcclCommunicator::all_gather_async(const void* send, void* recv, int64_t n, core::ElementType type,
                                                 core::Stream stream) {
  if (n < 0) throw std::invalid_argument("NcclCommunicator: negative element count");
  const cudaStream_t s = stream_of(stream);
  ncclCheck(ncclAllGather(send, recv, static_cast<size_t>(n), nccl_type(type), comm_, s));
  return pending_on(s);
}

void NcclCommunicator::broadcast(void* data, int64_t bytes, int root) {
  if (bytes < 0) throw std::invalid_argument("NcclCommunicator: negative byte count");
  ncclCheck(ncclBroadcast(data, data, static_cast<size_t>(bytes), ncclUint8, root, comm_, stream_));
  synchronize();
}

void NcclCommunicator::barrier() {
  // NCCL has no barrier: a one-element all-reduce that every rank must join, then wait for it.
  enqueue_all_reduce(barrier_word_, 1, ncclFloat32, ncclSum, stream_);
  synchronize();
}

}  // namespace starflow::parallel
