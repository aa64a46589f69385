// Helpers shared by the MPI tests: world rank and size, and a scratch directory every rank agrees on.
#pragma once
#include <mpi.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace starflow::mpi_test {

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

inline int world_size() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

// A fresh directory under the temp dir, named by rank 0 and shared by all ranks of this run.
inline std::string shared_dir(const std::string& tag) {
  std::string dir;
  if (world_rank() == 0) {
    dir = (std::filesystem::temp_directory_path() / ("starflow_" + tag + "_" + std::to_string(::getpid()))).string();
    std::filesystem::remove_all(dir);
  }
  int len = static_cast<int>(dir.size());
  MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD);
  dir.resize(len);
  MPI_Bcast(dir.data(), len, MPI_CHAR, 0, MPI_COMM_WORLD);
  return dir;
}

}  // namespace starflow::mpi_test
