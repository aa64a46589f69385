// GradientBuckets: bucketed, overlapped gradient all-reduce over MPI.
#include "parallel/gradient_buckets.h"

#include <climits>
#include <stdexcept>

#include "parallel/mpi_check.h"

namespace starflow::parallel {

GradientBuckets::GradientBuckets(MpiCommunicator& dp, const core::ParameterLayout& layout, float* grads,
                                 int64_t bucket_bytes, bool use_thread)
    : dp_(dp), grads_(grads) {
  mpiCheck(MPI_Comm_dup(dp.comm(), &comm_));
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
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  if (use_thread && level == MPI_THREAD_MULTIPLE && dp.size() > 1) worker_ = std::thread([this] { worker_loop(); });
}

GradientBuckets::~GradientBuckets() {
  if (worker_.joinable()) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      drained_.wait(lock, [this] { return queue_.empty() && in_flight_ == 0; });
      stop_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }
  // Never leave a request pending on a communicator we free (an exception mid-step).
  if (!requests_.empty()) MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
  MPI_Comm_free(&comm_);
}

void GradientBuckets::worker_loop() {
  for (;;) {
    size_t index;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_
      index = queue_.front();
      queue_.pop_front();
      ++in_flight_;
    }
    const Bucket& b = buckets_[index];
    const int rc = MPI_Allreduce(MPI_IN_PLACE, grads_ + b.begin, static_cast<int>(b.end - b.begin), MPI_FLOAT, MPI_SUM,
                                 comm_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (rc != MPI_SUCCESS && worker_error_.empty())
        worker_error_ = "MPI_Allreduce of gradient bucket " + std::to_string(index) + " failed (code " +
                        std::to_string(rc) + ")";
      --in_flight_;
    }
    drained_.notify_all();
  }
}

void GradientBuckets::begin() {
  for (Bucket& b : buckets_) b.arrived = 0, b.started = false;
  requests_.clear();
  first_start_ = -1;
}

void GradientBuckets::start(size_t index) {
  Bucket& b = buckets_[index];
  b.started = true;
  if (dp_.size() == 1) return;
  if (first_start_ < 0) first_start_ = MPI_Wtime();
  if (worker_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(index);
    }
    wake_.notify_one();
    return;
  }
  MPI_Request r;
  mpiCheck(MPI_Iallreduce(MPI_IN_PLACE, grads_ + b.begin, static_cast<int>(b.end - b.begin), MPI_FLOAT, MPI_SUM,
                          comm_, &r));
  requests_.push_back(r);
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
  if (b.arrived == b.expected && !b.started) start(it->second.first);
  progress();
}

double GradientBuckets::finish() {
  const double t0 = MPI_Wtime();
  // Buckets backward did not complete (parameters without gradient this step): in bucket order, identical
  // on every rank.
  for (size_t i = 0; i < buckets_.size(); ++i)
    if (!buckets_[i].started) start(i);
  if (worker_.joinable()) {
    std::unique_lock<std::mutex> lock(mutex_);
    drained_.wait(lock, [this] { return queue_.empty() && in_flight_ == 0; });
    if (!worker_error_.empty()) throw std::runtime_error(worker_error_);
  }
  if (!requests_.empty())
    mpiCheck(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE));
  requests_.clear();
  const double t1 = MPI_Wtime();
  comm_span_ = first_start_ < 0 ? 0 : t1 - first_start_;
  return t1 - t0;
}

}  // namespace starflow::parallel
