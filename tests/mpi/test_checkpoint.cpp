// MPI-IO checkpoints on 1..3 ranks: replicated and sharded tensors round-trip exactly, any rank count
// reads what any other wrote, keep-last-k, and a truncated or corrupted file is refused with its name.
#include <gtest/gtest.h>
#include <mpi.h>

#include <filesystem>
#include <fstream>

#include "jobs/checkpoint.h"
#include "tests/mpi/mpi_test_util.h"

using namespace starflow;
namespace fs = std::filesystem;

namespace {



std::vector<float> pattern(int64_t n, float base) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = base + 0.5f * float(i);
  return v;
}

}  // namespace

TEST(Checkpoint, ReplicatedAndShardedTensorsRoundTrip) {
  const int rank = mpi_test::world_rank(), size = mpi_test::world_size();
  const std::string dir = mpi_test::shared_dir("ckpt_roundtrip");
  const auto a = pattern(1000, 1.f), b = pattern(37, -3.f), big = pattern(12345, 7.f);
  // "big" is sharded: rank r holds a contiguous slice of unequal length.
  const int64_t n = 12345, per = n / size;
  const int64_t begin = rank * per, end = rank == size - 1 ? n : begin + per;
  std::vector<jobs::CheckpointTensor> tensors = {{"model.a", {10, 100}, a.data()},
                                           {"model.b", {37}, b.data()},
                                           {"adam_m.big", {n}, big.data() + begin, begin, end, false}};
  const nlohmann::json meta = {{"config", {{"channels", 64}}}, {"cursor", {{"epoch", 2}, {"position", 96}}}};
  const std::string path = jobs::write_checkpoint(MPI_COMM_WORLD, dir, 42, meta, tensors, 3);
  EXPECT_EQ(fs::path(path).filename(), "ckpt_00000042.sfckpt");

  jobs::CheckpointReader reader(MPI_COMM_WORLD, path);
  EXPECT_EQ(reader.info().step, 42);
  EXPECT_EQ(reader.info().header.at("meta"), meta);
  EXPECT_EQ(reader.shape("model.a"), (core::Shape{10, 100}));
  std::vector<float> a2(1000), b2(37), big2(n);
  reader.read("model.a", a2.data());
  reader.read("model.b", b2.data());
  reader.read("adam_m.big", big2.data());
  EXPECT_EQ(a2, a);
  EXPECT_EQ(b2, b);
  EXPECT_EQ(big2, big);
  // Partial reads (how a different layout reshards on load).
  std::vector<float> part(100);
  reader.read("adam_m.big", part.data(), 5000, 5100);
  EXPECT_EQ(part, std::vector<float>(big.begin() + 5000, big.begin() + 5100));
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) fs::remove_all(dir);
}

TEST(Checkpoint, KeepsTheNewestAndFindsThem) {
  const int rank = mpi_test::world_rank();
  const std::string dir = mpi_test::shared_dir("ckpt_keep");
  const auto a = pattern(64, 0.f);
  for (int64_t step : {10, 20, 30, 40})
    jobs::write_checkpoint(MPI_COMM_WORLD, dir, step, {{"s", step}}, {{"w", {64}, a.data()}}, 2);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"ckpt_00000030.sfckpt", "ckpt_00000040.sfckpt"}));
    EXPECT_EQ(fs::path(jobs::newest_checkpoint(dir)).filename(), "ckpt_00000040.sfckpt");
    // A half-written newer file (no trailer) is skipped in favour of the last complete one.
    { std::ofstream(fs::path(dir) / "ckpt_00000050.sfckpt") << "STARFLOW-CKPT partial"; }
    EXPECT_EQ(fs::path(jobs::newest_checkpoint(dir)).filename(), "ckpt_00000040.sfckpt");
    fs::remove_all(dir);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(Checkpoint, TruncatedOrCorruptFileIsRefusedByName) {
  const int rank = mpi_test::world_rank();
  const std::string dir = mpi_test::shared_dir("ckpt_corrupt");
  const auto a = pattern(4096, 1.f);
  const std::string path = jobs::write_checkpoint(MPI_COMM_WORLD, dir, 1, {}, {{"w", {4096}, a.data()}}, 0);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    const std::string truncated = dir + "/truncated.sfckpt", flipped = dir + "/flipped.sfckpt";
    fs::copy_file(path, truncated);
    fs::resize_file(truncated, fs::file_size(path) - 100);
    try {
      jobs::read_checkpoint_header(truncated);
      ADD_FAILURE() << "truncated checkpoint accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(truncated), std::string::npos) << e.what();
    }
    fs::copy_file(path, flipped);
    std::fstream f(flipped, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(64 + 400);  // inside the tensor data
    f.put('\x7f');
    f.close();
  }
  MPI_Barrier(MPI_COMM_WORLD);
  jobs::CheckpointReader reader(MPI_COMM_WORLD, dir + "/flipped.sfckpt");
  std::vector<float> out(4096);
  try {
    reader.read("w", out.data());
    ADD_FAILURE() << "corrupt tensor accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("checksum mismatch"), std::string::npos) << e.what();
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) fs::remove_all(dir);
}
