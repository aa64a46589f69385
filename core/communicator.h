// The collectives the model and the training loop need, declared in core so that core stays free of MPI:
// parallel/ implements them over MPI (CPU tensors) and NCCL (GPU tensors); LocalCommunicator is the
// one-process case.
#pragma once
#include <cstdint>

namespace starflow::core {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place, element-wise, identical result on every rank (a fixed reduction order: bit-reproducible
  // for a fixed rank count).
  virtual void all_reduce_sum(float* data, int64_t n) = 0;
  virtual void all_reduce_sum(double* data, int64_t n) = 0;
  virtual void all_reduce_max(double* data, int64_t n) = 0;
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;
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
};

}  // namespace starflow::core
