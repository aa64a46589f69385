// Communicator over NCCL for GPU tensors: every pointer given to it is device memory. Built collectively
// from an MPI communicator (rank 0 creates the NCCL unique id and broadcasts it over MPI, as Megatron and
// llm.c do). Its blocking calls run on its own stream (or one it is given) and wait for it; the typed and
// asynchronous calls are ordered on the stream they are given (its own when null): their results are ready for
// later work on that stream, and a Pending's wait() waits on the host for an event recorded after the
// collective — which is what overlapping the gradient reduction with backward needs.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <cstdint>

#include "core/communicator.h"

namespace starflow::parallel {

class NcclCommunicator final : public core::Communicator {
 public:
  // Collective over every rank of `comm`. Each rank's CUDA device must be selected before (see
  // select_local_device); stream == nullptr: the communicator creates and owns one. Throws on every rank
  // (never hangs the others) when any rank has no usable device or the id cannot be created.
  explicit NcclCommunicator(MPI_Comm comm, cudaStream_t stream = nullptr);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  ncclComm_t nccl() const { return comm_; }

  // core::Communicator on device buffers, blocking until done. NCCL gives the same result on every rank;
  // it is run-to-run reproducible for a fixed rank count and topology (fix NCCL_ALGO/NCCL_PROTO to keep it
  // so across machines).
  void all_reduce_sum(float* data, int64_t n) override;
  void all_reduce_sum(double* data, int64_t n) override;
  void all_reduce_max(double* data, int64_t n) override;
  void broadcast(void* data, int64_t bytes, int root) override;
  void barrier() override;

  bool device_buffers() const override { return true; }
  void all_reduce_sum(void* data, int64_t n, core::ElementType type, core::Stream stream) override;
  core::Pending all_reduce_sum_async(void* data, int64_t n, core::ElementType type,
                                     core::Stream stream = nullptr) override;
  core::Pending reduce_scatter_sum_async(const void* send, void* recv, int64_t n, core::ElementType type,
                                         core::Stream stream = nullptr) override;
  core::Pending all_gather_async(const void* send, void* recv, int64_t n, core::ElementType type,
                                 core::Stream stream = nullptr) override;
  void synchronize();

 private:
  void enqueue_all_reduce(void* data, int64_t n, ncclDataType_t type, ncclRedOp_t op, cudaStream_t stream);
  cudaStream_t stream_of(core::Stream s) const { return s ? static_cast<cudaStream_t>(s) : stream_; }
  core::Pending pending_on(cudaStream_t stream);

  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  bool owns_stream_ = false;
  int rank_ = 0, size_ = 1, device_ = -1;
  float* barrier_word_ = nullptr;  // one device float that barrier() all-reduces
  int abort_hook_ = 0;              // the watchdog's: ncclCommAbort before the job is aborted
};

// Selects this rank's GPU: its rank among the ranks of its node (MPI_COMM_TYPE_SHARED) modulo the visible
// device count. Returns the device; throws when no GPU is visible.
int select_local_device(MPI_Comm comm);

}  // namespace starflow::parallel
