// ProcessGrid: world rank r sits at tp_rank = r mod TP, dp_rank = r div TP.
#include "parallel/process_grid.h"

#include <stdexcept>

#include "parallel/mpi_check.h"

namespace starflow::parallel {

std::string grid_error(int world_size, int tp, int dp) {
  if (tp < 1) return "tensor-parallel width tp " + std::to_string(tp) + " must be >= 1";
  if (dp < 0) return "data-parallel width dp " + std::to_string(dp) + " must be >= 0 (0: the remaining ranks)";
  if (world_size % tp != 0)
    return "tp " + std::to_string(tp) + " does not divide the " + std::to_string(world_size) + " launched ranks";
  if (dp > 0 && tp * dp != world_size)
    return "the layout tp " + std::to_string(tp) + " × dp " + std::to_string(dp) + " needs " +
           std::to_string(tp * dp) + " ranks but " + std::to_string(world_size) + " were launched";
  return "";
}

ProcessGrid::ProcessGrid(MPI_Comm world, int tp, int dp) {
  world_ = std::make_unique<MpiCommunicator>(world);
  if (const std::string e = grid_error(world_->size(), tp, dp); !e.empty()) throw std::invalid_argument(e);
  const int r = world_->rank();
  MPI_Comm tp_comm = MPI_COMM_NULL, dp_comm = MPI_COMM_NULL;
  mpiCheck(MPI_Comm_split(world_->comm(), r / tp, r % tp, &tp_comm));
  mpiCheck(MPI_Comm_split(world_->comm(), r % tp, r / tp, &dp_comm));
  tp_ = std::make_unique<MpiCommunicator>(tp_comm);
  dp_ = std::make_unique<MpiCommunicator>(dp_comm);
  MPI_Comm_free(&tp_comm);
  MPI_Comm_free(&dp_comm);
  // Does every TP group live on one node? (It works either way; across nodes its all-reduces are slow.)
  MPI_Comm node = MPI_COMM_NULL;
  mpiCheck(MPI_Comm_split_type(tp_->comm(), MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  int on_node = 0, all = 0;
  MPI_Comm_size(node, &on_node);
  MPI_Comm_free(&node);
  int mine = on_node == tp_->size() ? 1 : 0;
  mpiCheck(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, world_->comm()));
  tp_within_node_ = all == 1;
}

std::string ProcessGrid::describe() const {
  return "TP " + std::to_string(tp_size()) + " × DP " + std::to_string(dp_size()) + " (" +
         std::to_string(world_size()) + " ranks)";
}

}  // namespace starflow::parallel
