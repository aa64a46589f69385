// GoogleTest under MPI: every rank runs every test; only rank 0 prints; the exit status is the worst rank's.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>

int main(int argc, char** argv) {
  // MPI_THREAD_MULTIPLE lets the gradient all-reduce run on its own thread (parallel/gradient_buckets.h);
  // with less, the buckets fall back to non-blocking collectives.
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) std::freopen("/dev/null", "w", stdout);
  ::testing::InitGoogleTest(&argc, argv);
  int rc = RUN_ALL_TESTS();
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
