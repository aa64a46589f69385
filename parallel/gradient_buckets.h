// Data-parallel gradient averaging overlapped with backward (PyTorch DDP's and Megatron's bucketing): the
// flat gradient buffer is cut into buckets of whole tensors; backward reports each parameter whose gradient
// is final (core::GradientReadyObserver), and a bucket starts its all-reduce over the DP group as soon as all
// its tensors are in. finish() waits for the rest. Every rank runs the same backward, so the buckets start in
// the same order everywhere, as MPI requires of collectives.
// Where MPI provides MPI_THREAD_MULTIPLE, a communication thread runs the buckets' all-reduces while backward
// computes (MPI libraries without an asynchronous progress engine, Open MPI's included, only move a
// non-blocking collective forward inside MPI calls); otherwise non-blocking all-reduces are started and
// poked between layers.
#pragma once
#include <mpi.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/models/gradient_ready.h"
#include "core/models/parameter_layout.h"
#include "parallel/mpi_communicator.h"

namespace starflow::parallel {

class GradientBuckets final : public core::GradientReadyObserver {
 public:
  // grads: the flat gradient buffer laid out by `layout` (it must outlive this object).
  // use_thread: run the all-reduces on a communication thread when MPI allows it (false: always the
  // non-blocking path).
  GradientBuckets(MpiCommunicator& dp, const core::ParameterLayout& layout, float* grads,
                  int64_t bucket_bytes = 4 << 20, bool use_thread = true);
  ~GradientBuckets() override;
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  void begin();  // before backward
  void gradient_ready(int64_t offset) override;
  // Starts whatever backward did not report and waits for every bucket: the buffer then holds the sum over
  // the DP ranks. Returns the seconds spent waiting here (communication not hidden behind backward).
  double finish();

  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }
  bool threaded() const { return worker_.joinable(); }
  // Seconds from the first bucket's start to the end of finish() (the span of all communication).
  double last_comm_span() const { return comm_span_; }

 private:
  struct Bucket {
    int64_t begin = 0, end = 0;  // flat element range (whole tensors, padding included)
    int64_t expected = 0, arrived = 0;
    bool started = false;
  };
  void start(size_t bucket);
  void progress();
  void worker_loop();

  MpiCommunicator& dp_;
  MPI_Comm comm_ = MPI_COMM_NULL;  // our own duplicate of the DP group (the worker's traffic stays apart)
  float* grads_;
  std::vector<Bucket> buckets_;
  std::unordered_map<int64_t, std::pair<size_t, int64_t>> tensor_;  // offset -> (bucket, size)
  std::vector<MPI_Request> requests_;
  double first_start_ = -1, comm_span_ = 0;
  // Communication thread (MPI_THREAD_MULTIPLE).
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable wake_, drained_;
  std::deque<size_t> queue_;
  size_t in_flight_ = 0;
  bool stop_ = false;
  std::string worker_error_;
};

}  // namespace starflow::parallel
