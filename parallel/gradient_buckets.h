// Data-parallel gradient averaging overlapped with backward (PyTorch DDP's and Megatron's bucketing): the
// flat gradient buffer is cut into buckets of whole tensors; backward reports each parameter whose gradient
// is final (core::GradientReadyObserver), and a bucket starts its all-reduce over the DP group as soon as all
// its tensors are in. finish() waits for the rest. Every rank runs the same backward, so the buckets start in
// the same order everywhere, as collectives require. Written against core::Communicator's asynchronous
// all-reduce: over MPI (host gradients, a communication thread or non-blocking collectives: see
// MpiCommunicator) and over NCCL (device gradients, ordered on the backward stream) alike.
#pragma once
#include <chrono>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "core/communicator.h"
#include "core/models/gradient_ready.h"
#include "core/models/parameter_layout.h"

namespace starflow::parallel {

class GradientBuckets final : public core::GradientReadyObserver {
 public:
  // grads: the flat gradient buffer laid out by `layout`, of `type` elements, in the communicator's memory (it
  // must outlive this object). stream: where a device communicator orders the reductions (the backward's
  // stream).
  GradientBuckets(core::Communicator& dp, const core::ParameterLayout& layout, void* grads, core::ElementType type,
                  int64_t bucket_bytes = 4 << 20, core::Stream stream = nullptr);
  GradientBuckets(core::Communicator& dp, const core::ParameterLayout& layout, float* grads,
                  int64_t bucket_bytes = 4 << 20, core::Stream stream = nullptr)
      : GradientBuckets(dp, layout, grads, core::ElementType::F32, bucket_bytes, stream) {}
  ~GradientBuckets() override = default;
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  void begin();  // before backward
  void gradient_ready(int64_t offset) override;
  // Starts whatever backward did not report and waits for every bucket: the buffer then holds the sum over
  // the DP ranks. Returns the seconds spent waiting here (communication not hidden behind backward).
  double finish();

  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Seconds from the first bucket's start to the end of finish() (the span of all communication).
  double last_comm_span() const { return comm_span_; }

 private:
  struct Bucket {
    int64_t begin = 0, end = 0;  // flat element range (whole tensors, padding included)
    int64_t expected = 0, arrived = 0;
    bool started = false;
  };
  void start(size_t bucket);

  core::Communicator& dp_;
  char* grads_;
  core::ElementType type_;
  core::Stream stream_;
  std::vector<Bucket> buckets_;
  std::unordered_map<int64_t, std::pair<size_t, int64_t>> tensor_;  // offset -> (bucket, size)
  std::vector<core::Pending> pending_;
  std::chrono::steady_clock::time_point first_start_;
  bool any_started_ = false;
  double comm_span_ = 0;
};

}  // namespace starflow::parallel
