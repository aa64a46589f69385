// The collectives the model and the training loop need, declared in core so that core stays free of MPI and
// CUDA: parallel/ implements them over MPI (host buffers) and NCCL (device buffers); LocalCommunicator is the
// one-process case. The same interface serves both, so the tensor-parallel linears and the bucketed gradient
// reduction are written once.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace starflow::core {

// Element types a collective moves (BF16: bfloat16 bits, summed in fp32 and rounded to nearest even).
enum class ElementType { F32, F64, BF16 };

inline int64_t element_bytes(ElementType type) {
  return type == ElementType::F64 ? 8 : type == ElementType::F32 ? 4 : 2;
}

// An opaque stream a device communicator orders its work on (a cudaStream_t); nullptr: the communicator's own.
// Host communicators ignore it.
using Stream = void*;

// A collective in flight. wait() returns once it has completed: its buffers may then be read and reused (on a
// device communicator: once the work is done on the device). test() says whether it has, and advances it where
// the library only progresses inside its calls. Destroying one that has not completed waits for it.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  virtual void wait() = 0;
  virtual bool test() = 0;
};
using Pending = std::unique_ptr<PendingCollective>;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Whether the buffers given to this communicator are device memory (NCCL) rather than host memory (MPI).
  virtual bool device_buffers() const { return false; }

  // Blocking: in place, element-wise, identical result on every rank; for a fixed rank count and layout the
  // same bits on every run.
  virtual void all_reduce_sum(float* data, int64_t n) = 0;
  virtual void all_reduce_sum(double* data, int64_t n) = 0;
  virtual void all_reduce_max(double* data, int64_t n) = 0;
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;

  // Typed, ordered on `stream`: on a device communicator the result is ready for any later work on that
  // stream (the host does not wait); on a host communicator the call returns with the result.
  virtual void all_reduce_sum(void* data, int64_t n, ElementType type, Stream stream) = 0;

  // Asynchronous: started in the same order on every rank, each completed by its Pending (in any order).
  // In place sum of data [n].
  virtual Pending all_reduce_sum_async(void* data, int64_t n, ElementType type, Stream stream = nullptr) = 0;
  // recv [n] ← this rank's block [rank·n, (rank+1)·n) of the element-wise sum of every rank's send [size·n].
  virtual Pending reduce_scatter_sum_async(const void* send, void* recv, int64_t n, ElementType type,
                                           Stream stream = nullptr) = 0;
  // recv [size·n] ← every rank's send [n], in rank order.
  virtual Pending all_gather_async(const void* send, void* recv, int64_t n, ElementType type,
                                   Stream stream = nullptr) = 0;
};

// A collective that was complete when it was returned.
class CompletedCollective final : public PendingCollective {
 public:
  void wait() override {}
  bool test() override { return true; }
};

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_sum(float*, int64_t) override {}
  void all_reduce_sum(double*, int64_t) override {}
  void all_reduce_max(double*, int64_t) override {}
  void broadcast(void*, int64_t, int) override {}
  void barrier() override {}
  void all_reduce_sum(void*, int64_t, ElementType, Stream) override {}
  Pending all_reduce_sum_async(void*, int64_t, ElementType, Stream) override {
    return std::make_unique<CompletedCollective>();
  }
  Pending reduce_scatter_sum_async(const void* send, void* recv, int64_t n, ElementType type, Stream) override {
    copy(send, recv, n, type);
    return std::make_unique<CompletedCollective>();
  }
  Pending all_gather_async(const void* send, void* recv, int64_t n, ElementType type, Stream) override {
    copy(send, recv, n, type);
    return std::make_unique<CompletedCollective>();
  }

 private:
  static void copy(const void* send, void* recv, int64_t n, ElementType type) {
    if (n > 0 && send != recv) std::memmove(recv, send, static_cast<size_t>(n * element_bytes(type)));
  }
};

}  // namespace starflow::core
