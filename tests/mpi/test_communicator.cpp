// The communicator's asynchronous collectives over MPI, in both progress modes (a communication thread, MPI's
// non-blocking collectives): several in flight at once and completed in any order, the typed fp32/fp64/bf16
// sums, reduce-scatter and all-gather as each other's partners, and blocking calls on the same communicator
// while asynchronous ones are in flight. The NCCL communicator passes the same checks on device buffers
// (tests/gpu/test_nccl_communicator.cpp).
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdint>
#include <vector>

#include "core/io/float16.h"
#include "parallel/mpi_communicator.h"
#include "tests/mpi/mpi_test_util.h"

using namespace starflow;
using core::ElementType;
using parallel::MpiCommunicator;

namespace {

const MpiCommunicator::AsyncProgress kModes[] = {MpiCommunicator::AsyncProgress::kAuto,
                                                 MpiCommunicator::AsyncProgress::kNonBlocking};

}  // namespace

TEST(Communicator, AsyncAllReducesInFlightTogetherCompleteInAnyOrder) {
  const int rank = mpi_test::world_rank(), size = mpi_test::world_size();
  const int ranks_sum = size * (size - 1) / 2;
  for (const auto mode : kModes) {
    MpiCommunicator comm(MPI_COMM_WORLD, mode);
    std::vector<float> f(100003);
    std::vector<double> d(777);
    std::vector<uint16_t> h(4099);
    for (size_t i = 0; i < f.size(); ++i) f[i] = float(int(i % 13) + rank);
    for (size_t i = 0; i < d.size(); ++i) d[i] = 0.125 * double(i) + rank;
    for (size_t i = 0; i < h.size(); ++i) h[i] = core::io::float_to_bfloat16_bits(float(int(i % 5) + rank));
    core::Pending pf = comm.all_reduce_sum_async(f.data(), int64_t(f.size()), ElementType::F32);
    core::Pending pd = comm.all_reduce_sum_async(d.data(), int64_t(d.size()), ElementType::F64);
    core::Pending ph = comm.all_reduce_sum_async(h.data(), int64_t(h.size()), ElementType::BF16);
    // A blocking collective on the same communicator meanwhile: it runs apart from the asynchronous ones.
    double one = 1;
    comm.all_reduce_sum(&one, 1);
    EXPECT_EQ(one, double(size));
    ph->wait();  // the last started, first waited for
    pd->wait();
    pf->wait();
    EXPECT_TRUE(pf->test() && pd->test() && ph->test());
    for (size_t i = 0; i < f.size(); ++i) ASSERT_EQ(f[i], float(int(i % 13) * size + ranks_sum)) << i;
    for (size_t i = 0; i < d.size(); ++i) ASSERT_EQ(d[i], 0.125 * double(i) * size + ranks_sum) << i;
    for (size_t i = 0; i < h.size(); ++i)
      ASSERT_EQ(core::io::bfloat16_bits_to_float(h[i]), float(int(i % 5) * size + ranks_sum)) << i;
    EXPECT_EQ(comm.threaded(), mode == MpiCommunicator::AsyncProgress::kAuto && size > 1 && [] {
      int level = 0;
      MPI_Query_thread(&level);
      return level == MPI_THREAD_MULTIPLE;
    }());
  }
}

TEST(Communicator, ReduceScatterAndAllGatherAreEachOthersPartners) {
  const int rank = mpi_test::world_rank(), size = mpi_test::world_size();
  const int ranks_sum = size * (size - 1) / 2;
  for (const auto mode : kModes) {
    MpiCommunicator comm(MPI_COMM_WORLD, mode);
    const int64_t n = 1031;
    std::vector<float> send(n * size), block(n, -1.f), gathered(n * size, -1.f);
    for (size_t i = 0; i < send.size(); ++i) send[i] = float(int(i % 11) + rank);
    comm.reduce_scatter_sum_async(send.data(), block.data(), n, ElementType::F32)->wait();
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(block[i], float(int((rank * n + i) % 11) * size + ranks_sum)) << i;
    comm.all_gather_async(block.data(), gathered.data(), n, ElementType::F32)->wait();
    for (size_t i = 0; i < gathered.size(); ++i) ASSERT_EQ(gathered[i], float(int(i % 11) * size + ranks_sum)) << i;
  }
}

TEST(Communicator, APendingDroppedUnwaitedStillCompletes) {
  const int size = mpi_test::world_size();
  for (const auto mode : kModes) {
    MpiCommunicator comm(MPI_COMM_WORLD, mode);
    std::vector<float> x(5000, 1.f);
    { core::Pending dropped = comm.all_reduce_sum_async(x.data(), int64_t(x.size()), ElementType::F32); }
    for (float v : x) ASSERT_EQ(v, float(size));
  }
}

TEST(Communicator, TypedBlockingSumMatchesTheOverloads) {
  const int rank = mpi_test::world_rank(), size = mpi_test::world_size();
  MpiCommunicator comm(MPI_COMM_WORLD);
  std::vector<uint16_t> h(300);
  for (size_t i = 0; i < h.size(); ++i) h[i] = core::io::float_to_bfloat16_bits(float(int(i % 7) - rank));
  comm.all_reduce_sum(h.data(), int64_t(h.size()), ElementType::BF16, nullptr);
  for (size_t i = 0; i < h.size(); ++i)
    ASSERT_EQ(core::io::bfloat16_bits_to_float(h[i]), float(int(i % 7) * size - size * (size - 1) / 2)) << i;
}
