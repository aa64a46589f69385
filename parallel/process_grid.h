// The TP × DP process grid over the launcher's ranks (Megatron's order: consecutive ranks form a
// tensor-parallel group, so TP fills a node first and its all-reduces stay on the fastest links), with one
// communicator per group.
#pragma once
#include <mpi.h>

#include <memory>
#include <string>

#include "parallel/mpi_communicator.h"

namespace starflow::parallel {

class ProcessGrid {
 public:
  // tp: tensor-parallel width; dp: data-parallel width, 0 for "all the remaining ranks". Throws a one-line
  // std::invalid_argument when the ranks do not form the grid (before any work), the same on every rank.
  ProcessGrid(MPI_Comm world, int tp, int dp = 0);

  int world_rank() const { return world_->rank(); }
  int world_size() const { return world_->size(); }
  int tp_rank() const { return tp_->rank(); }
  int tp_size() const { return tp_->size(); }
  int dp_rank() const { return dp_->rank(); }
  int dp_size() const { return dp_->size(); }
  MpiCommunicator& world() { return *world_; }
  MpiCommunicator& tp() { return *tp_; }  // the ranks sharing one model replica
  MpiCommunicator& dp() { return *dp_; }  // the ranks holding the same shard of different replicas
  bool tp_within_node() const { return tp_within_node_; }
  std::string describe() const;  // "TP 2 × DP 2 (4 ranks)"

 private:
  std::unique_ptr<MpiCommunicator> world_, tp_, dp_;
  bool tp_within_node_ = true;
};

// The layout check alone (also used before MPI starts work): "" when world_size ranks form tp × dp.
std::string grid_error(int world_size, int tp, int dp);

}  // namespace starflow::parallel
