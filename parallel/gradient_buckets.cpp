// GradientBuckets: bucketed, overlapped gradient all-reduce over MPI.
#include "parallel/gradient_buckets.h"

#include <climits>
#include <stdexcept>

#include "parallel/mpi_check.h"

namespace starflow::parallel {

GradientBuckets::GradientBuckets(MpiCommunicator& dp, const core::ParameterLayout& layout, float* grads,
                                 int64_t bucket_bytes)
    : dp_(dp), grads_(grads) {
  const int64_t bucket_elems = std::max<int64_t>(1, bucket_bytes / int64_t(sizeof(float)));
  for (const core::ParameterView& v : layout.views()) {
    if (buckets_.empty() || buckets_.back().end - buckets_.back().begin >= bucket_elems)
      buckets_.push_back({v.offset, v.offset, 0, 0, false});
    Bucket& b = buckets_.back();
    b.end = v.offset + v.size;
    b.expected += v.size;
    tensor_[v.offset] = {buckets_.size() - 1, v.size};
  }
  for (const Bucket& b : buckets_)
    if (b.end - b.begin > INT_MAX) throw std::invalid_argument("gradient bucket larger than 2^31 elements");
}

GradientBuckets::~GradientBuckets() {
  // Never leave a request pending on a communicator that outlives us (an exception mid-step).
  if (!requests_.empty()) MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
}

void GradientBuckets::begin() {
  for (Bucket& b : buckets_) b.arrived = 0, b.started = false;
  requests_.clear();
  first_start_ = -1;
}

void GradientBuckets::start(Bucket& b) {
  if (dp_.size() == 1) {
    b.started = true;
    return;
  }
  if (first_start_ < 0) first_start_ = MPI_Wtime();
  MPI_Request r;
  mpiCheck(MPI_Iallreduce(MPI_IN_PLACE, grads_ + b.begin, static_cast<int>(b.end - b.begin), MPI_FLOAT, MPI_SUM,
                          dp_.comm(), &r));
  requests_.push_back(r);
  b.started = true;
}

void GradientBuckets::progress() {
  // Open MPI advances non-blocking collectives only inside MPI calls: poke it between layers.
  if (requests_.empty()) return;
  int done = 0;
  mpiCheck(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE));
}

void GradientBuckets::gradient_ready(int64_t offset) {
  auto it = tensor_.find(offset);
  if (it == tensor_.end()) throw std::logic_error("gradient_ready: no parameter at offset " + std::to_string(offset));
  Bucket& b = buckets_[it->second.first];
  b.arrived += it->second.second;
  if (b.arrived == b.expected && !b.started) start(b);
  progress();
}

double GradientBuckets::finish() {
  const double t0 = MPI_Wtime();
  // Buckets backward did not complete (parameters without gradient this step): in bucket order, identical
  // on every rank.
  for (Bucket& b : buckets_)
    if (!b.started) start(b);
  if (!requests_.empty())
    mpiCheck(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE));
  requests_.clear();
  const double t1 = MPI_Wtime();
  comm_span_ = first_start_ < 0 ? 0 : t1 - first_start_;
  return t1 - t0;
}

}  // namespace starflow::parallel
