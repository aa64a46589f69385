// Communicator over an MPI communicator (host buffers). Owns a duplicate of the communicator it is given, so its
// traffic never mixes with the caller's, and a second one for its asynchronous collectives, so that they never
// interleave with its blocking ones.
// Asynchronous collectives progress on a communication thread when MPI provides MPI_THREAD_MULTIPLE: MPI
// libraries without an asynchronous progress engine (Open MPI's included) only move a non-blocking collective
// forward inside MPI calls, so a thread running the blocking calls in order is what overlaps them with
// compute. Otherwise they are MPI's non-blocking collectives, advanced by test() and completed by wait().
#pragma once
#include <mpi.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "core/communicator.h"

namespace starflow::parallel {

class MpiCommunicator final : public core::Communicator {
 public:
  enum class AsyncProgress {
    kAuto,         // a communication thread when MPI allows it, else non-blocking collectives
    kNonBlocking,  // always MPI's non-blocking collectives
  };
  explicit MpiCommunicator(MPI_Comm comm, AsyncProgress progress = AsyncProgress::kAuto);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  MPI_Comm comm() const { return comm_; }
  // Whether asynchronous collectives run on the communication thread.
  bool threaded() const { return worker_.joinable(); }

  void all_reduce_sum(float* data, int64_t n) override;
  void all_reduce_sum(double* data, int64_t n) override;
  void all_reduce_max(double* data, int64_t n) override;
  void broadcast(void* data, int64_t bytes, int root) override;
  void barrier() override;
  void all_reduce_sum(void* data, int64_t n, core::ElementType type, core::Stream stream) override;
  core::Pending all_reduce_sum_async(void* data, int64_t n, core::ElementType type,
                                     core::Stream stream = nullptr) override;
  core::Pending reduce_scatter_sum_async(const void* send, void* recv, int64_t n, core::ElementType type,
                                         core::Stream stream = nullptr) override;
  core::Pending all_gather_async(const void* send, void* recv, int64_t n, core::ElementType type,
                                 core::Stream stream = nullptr) override;

 private:
  // Runs `start` (which issues collectives on async_comm_): on the worker, as blocking calls, or here, as
  // non-blocking ones that fill the requests it is given.
  core::Pending launch(std::function<void(std::vector<MPI_Request>*)> start);
  MPI_Datatype datatype(core::ElementType type) const;
  MPI_Op sum_op(core::ElementType type) const;
  void worker_loop();

  MPI_Comm comm_ = MPI_COMM_NULL, async_comm_ = MPI_COMM_NULL;
  MPI_Op bf16_sum_ = MPI_OP_NULL;
  int rank_ = 0, size_ = 1;
  // The communication thread's queue of collectives, run in order.
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
};

}  // namespace starflow::parallel
