// Data-parallel gradient averaging overlapped with backward (PyTorch DDP's and Megatron's bucketing): the
// flat gradient buffer is cut into buckets of whole tensors; backward reports each parameter whose gradient
// is final (core::GradientReadyObserver), and a bucket starts its non-blocking all-reduce over the DP group
// as soon as all its tensors are in. finish() waits for the rest. Every rank runs the same backward, so the
// buckets start in the same order everywhere, as MPI requires of non-blocking collectives.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "core/models/gradient_ready.h"
#include "core/models/parameter_layout.h"
#include "parallel/mpi_communicator.h"

namespace starflow::parallel {

class GradientBuckets final : public core::GradientReadyObserver {
 public:
  // grads: the flat gradient buffer laid out by `layout` (it must outlive this object).
  GradientBuckets(MpiCommunicator& dp, const core::ParameterLayout& layout, float* grads,
                  int64_t bucket_bytes = 4 << 20);
  ~GradientBuckets() override;
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
  void start(Bucket& b);
  void progress();

  MpiCommunicator& dp_;
  float* grads_;
  std::vector<Bucket> buckets_;
  std::unordered_map<int64_t, std::pair<size_t, int64_t>> tensor_;  // offset -> (bucket, size)
  std::vector<MPI_Request> requests_;
  double first_start_ = -1, comm_span_ = 0;
};

}  // namespace starflow::parallel
