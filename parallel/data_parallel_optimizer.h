// AdamW across data-parallel ranks, optionally with ZeRO-1: each DP rank keeps the AdamW moments of one
// contiguous part of the flat buffer only, updates that part, and the ranks all-gather the updated weights.
// The arithmetic per element is the plain optimizer's, so ZeRO-1 gives the same weights as plain DP.
#pragma once
#include <cstdint>
#include <span>

#include "core/optim/adamw.h"
#include "parallel/mpi_communicator.h"

namespace starflow::parallel {

class DataParallelOptimizer {
 public:
  DataParallelOptimizer(MpiCommunicator& dp, int64_t total, core::AdamWConfig cfg, bool zero1);

  // One optimizer step on the (already DP-averaged) gradients; afterwards every DP rank holds all weights.
  void step(std::span<float> params, std::span<const float> grads, double lr);

  bool zero1() const { return zero1_; }
  // The flat range whose moments this rank holds ([0, total) without ZeRO-1).
  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }
  // The part [begin, end) of DP rank r.
  static std::pair<int64_t, int64_t> part(int64_t total, int ranks, int r);
  core::AdamW<float>& adam() { return adam_; }
  const core::AdamW<float>& adam() const { return adam_; }

 private:
  MpiCommunicator& dp_;
  bool zero1_;
  int64_t total_, begin_, end_;
  core::AdamW<float> adam_;
};

}  // namespace starflow::parallel
