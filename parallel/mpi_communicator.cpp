// MpiCommunicator. Large buffers go in chunks of at most 2^30 elements (MPI counts are int).
#include "parallel/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <chrono>
#include <cstring>
#include <future>
#include <string>
#include <vector>

#include "core/io/float16.h"
#include "parallel/mpi_check.h"

namespace starflow::parallel {
namespace {

constexpr int64_t kMaxCount = int64_t(1) << 30;

template <class T>
void all_reduce(MPI_Comm comm, T* data, int64_t n, MPI_Datatype type, MPI_Op op) {
  for (int64_t at = 0; at < n; at += kMaxCount)
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, data + at, static_cast<int>(std::min(kMaxCount, n - at)), type, op, comm));
}

// bfloat16 sum: each pair added in fp32 and rounded back to nearest even, as NCCL does.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i)
    b[i] = core::io::float_to_bfloat16_bits(core::io::bfloat16_bits_to_float(a[i]) +
                                            core::io::bfloat16_bits_to_float(b[i]));
}

// A collective run by the communication thread: done when the thread has run it.
class ThreadPending final : public core::PendingCollective {
 public:
  explicit ThreadPending(std::future<void> done) : done_(std::move(done)) {}
  ~ThreadPending() override {
    if (done_.valid()) done_.wait();
  }
  void wait() override {
    if (done_.valid()) done_.get();  // rethrows the collective's error
  }
  bool test() override { return !done_.valid() || done_.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }

 private:
  std::future<void> done_;
};

// Non-blocking collectives.
class RequestPending final : public core::PendingCollective {
 public:
  explicit RequestPending(std::vector<MPI_Request> requests) : requests_(std::move(requests)) {}
  ~RequestPending() override {
    if (!requests_.empty()) MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
  }
  void wait() override {
    if (requests_.empty()) return;
    mpiCheck(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE));
    requests_.clear();
  }
  bool test() override {
    if (requests_.empty()) return true;
    int done = 0;
    mpiCheck(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE));
    if (done) requests_.clear();
    return done != 0;
  }

 private:
  std::vector<MPI_Request> requests_;
};

int checked_count(int64_t n, const char* what) {
  if (n < 0 || n > INT_MAX)
    throw std::invalid_argument(std::string("MpiCommunicator: ") + what + " of " + std::to_string(n) +
                                " elements exceeds MPI's int counts");
  return static_cast<int>(n);
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm, AsyncProgress progress) {
  mpiCheck(MPI_Comm_dup(comm, &comm_));
  mpiCheck(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  mpiCheck(MPI_Comm_dup(comm, &async_comm_));
  mpiCheck(MPI_Comm_set_errhandler(async_comm_, MPI_ERRORS_RETURN));
  mpiCheck(MPI_Comm_rank(comm_, &rank_));
  mpiCheck(MPI_Comm_size(comm_, &size_));
  mpiCheck(MPI_Op_create(&bf16_sum, /*commute=*/1, &bf16_sum_));
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  if (progress == AsyncProgress::kAuto && level == MPI_THREAD_MULTIPLE && size_ > 1)
    worker_ = std::thread([this] { worker_loop(); });
}

MpiCommunicator::~MpiCommunicator() {
  if (worker_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;  // the worker drains its queue first: every collective started here completes
    }
    wake_.notify_all();
    worker_.join();
  }
  if (bf16_sum_ != MPI_OP_NULL) MPI_Op_free(&bf16_sum_);
  if (async_comm_ != MPI_COMM_NULL) MPI_Comm_free(&async_comm_);
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiCommunicator::worker_loop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_, and nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job();
  }
}

MPI_Datatype MpiCommunicator::datatype(core::ElementType type) const {
  switch (type) {
    case core::ElementType::F32: return MPI_FLOAT;
    case core::ElementType::F64: return MPI_DOUBLE;
    case core::ElementType::BF16: return MPI_UINT16_T;
  }
  throw std::invalid_argument("MpiCommunicator: unknown element type");
}

MPI_Op MpiCommunicator::sum_op(core::ElementType type) const {
  return type == core::ElementType::BF16 ? bf16_sum_ : MPI_SUM;
}

core::Pending MpiCommunicator::launch(std::function<void(std::vector<MPI_Request>*)> start) {
  if (!worker_.joinable()) {
    std::vector<MPI_Request> requests;
    start(&requests);
    return std::make_unique<RequestPending>(std::move(requests));
  }
  auto task = std::make_shared<std::packaged_task<void()>>([start = std::move(start)] { start(nullptr); });
  std::future<void> done = task->get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back([task] { (*task)(); });
  }
  wake_.notify_one();
  return std::make_unique<ThreadPending>(std::move(done));
}

void MpiCommunicator::all_reduce_sum(float* data, int64_t n) { all_reduce(comm_, data, n, MPI_FLOAT, MPI_SUM); }
void MpiCommunicator::all_reduce_sum(double* data, int64_t n) { all_reduce(comm_, data, n, MPI_DOUBLE, MPI_SUM); }
void MpiCommunicator::all_reduce_max(double* data, int64_t n) { all_reduce(comm_, data, n, MPI_DOUBLE, MPI_MAX); }

void MpiCommunicator::all_reduce_sum(void* data, int64_t n, core::ElementType type, core::Stream) {
  char* p = static_cast<char*>(data);
  const int64_t bytes = core::element_bytes(type);
  for (int64_t at = 0; at < n; at += kMaxCount)
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, p + at * bytes, static_cast<int>(std::min(kMaxCount, n - at)),
                           datatype(type), sum_op(type), comm_));
}

void MpiCommunicator::broadcast(void* data, int64_t bytes, int root) {
  char* p = static_cast<char*>(data);
  for (int64_t at = 0; at < bytes; at += kMaxCount)
    mpiCheck(MPI_Bcast(p + at, static_cast<int>(std::min(kMaxCount, bytes - at)), MPI_BYTE, root, comm_));
}

void MpiCommunicator::barrier() { mpiCheck(MPI_Barrier(comm_)); }

core::Pending MpiCommunicator::all_reduce_sum_async(void* data, int64_t n, core::ElementType type, core::Stream) {
  if (size_ == 1 || n == 0) return std::make_unique<core::CompletedCollective>();
  char* p = static_cast<char*>(data);
  const int64_t bytes = core::element_bytes(type);
  const MPI_Datatype dt = datatype(type);
  const MPI_Op op = sum_op(type);
  const MPI_Comm comm = async_comm_;
  return launch([=](std::vector<MPI_Request>* requests) {
    for (int64_t at = 0; at < n; at += kMaxCount) {
      const int count = static_cast<int>(std::min(kMaxCount, n - at));
      if (!requests) {
        mpiCheck(MPI_Allreduce(MPI_IN_PLACE, p + at * bytes, count, dt, op, comm));
        continue;
      }
      requests->emplace_back();
      mpiCheck(MPI_Iallreduce(MPI_IN_PLACE, p + at * bytes, count, dt, op, comm, &requests->back()));
    }
  });
}

core::Pending MpiCommunicator::reduce_scatter_sum_async(const void* send, void* recv, int64_t n,
                                                        core::ElementType type, core::Stream) {
  checked_count(n * size_, "reduce-scatter");
  const int count = checked_count(n, "reduce-scatter");
  if (size_ == 1) {
    if (n > 0 && send != recv) std::memmove(recv, send, static_cast<size_t>(n * core::element_bytes(type)));
    return std::make_unique<core::CompletedCollective>();
  }
  const MPI_Datatype dt = datatype(type);
  const MPI_Op op = sum_op(type);
  const MPI_Comm comm = async_comm_;
  return launch([=](std::vector<MPI_Request>* requests) {
    if (!requests) return mpiCheck(MPI_Reduce_scatter_block(send, recv, count, dt, op, comm));
    requests->emplace_back();
    mpiCheck(MPI_Ireduce_scatter_block(send, recv, count, dt, op, comm, &requests->back()));
  });
}

core::Pending MpiCommunicator::all_gather_async(const void* send, void* recv, int64_t n, core::ElementType type,
                                                core::Stream) {
  checked_count(n * size_, "all-gather");
  const int count = checked_count(n, "all-gather");
  if (size_ == 1) {
    if (n > 0 && send != recv) std::memmove(recv, send, static_cast<size_t>(n * core::element_bytes(type)));
    return std::make_unique<core::CompletedCollective>();
  }
  const MPI_Datatype dt = datatype(type);
  const MPI_Comm comm = async_comm_;
  return launch([=](std::vector<MPI_Request>* requests) {
    if (!requests) return mpiCheck(MPI_Allgather(send, count, dt, recv, count, dt, comm));
    requests->emplace_back();
    mpiCheck(MPI_Iallgather(send, count, dt, recv, count, dt, comm, &requests->back()));
  });
}

}  // namespace starflow::parallel
