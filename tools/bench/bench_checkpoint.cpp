// starflow bench checkpoint: MB/s of the MPI-IO checkpoint writer (collective, CRC-32s, temp + sync +
// rename) against a plain sequential write + fsync of the same bytes, measured in the same run.
#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "jobs/checkpoint.h"
#include "tools/mpi_session.h"
#include "tools/options.h"

namespace starflow::tools {

int bench_checkpoint(int argc, char** argv) {
  int megabytes = 256, runs = 3;
  const Option table[] = {int_option("--mb", megabytes, 1, "checkpoint size in MB (default 256)"),
                          int_option("--runs", runs, 1, "runs of each writer; the best is reported (default 3)")};
  const int parsed = parse_options("bench checkpoint", "MPI-IO checkpoint writes against a plain sequential write.",
                                   table, argc, argv);
  if (parsed >= 0) return parsed;
  MpiSession mpi(argc, argv, MPI_THREAD_FUNNELED);
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("starflow_bench_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  // Tensors shaped like a model's: many of a few MB each.
  const int64_t per_tensor = 1 << 20, tensors = std::max<int64_t>(1, int64_t(megabytes) * 1000000 / 4 / per_tensor);
  std::vector<std::vector<float>> data(tensors, std::vector<float>(per_tensor));
  for (int64_t t = 0; t < tensors; ++t)
    for (int64_t i = 0; i < per_tensor; ++i) data[t][i] = float(t) + 1e-3f * float(i);
  std::vector<jobs::CheckpointTensor> list;
  for (int64_t t = 0; t < tensors; ++t) list.push_back({"model.t" + std::to_string(t), {per_tensor}, data[t].data()});
  const double bytes = double(tensors) * per_tensor * sizeof(float);
  double best_ckpt = 1e30, best_plain = 1e30;
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    jobs::write_checkpoint(MPI_COMM_SELF, dir.string(), r, {{"bench", true}}, list, 1);
    best_ckpt = std::min(best_ckpt, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    t0 = std::chrono::steady_clock::now();
    const std::string plain = (dir / "plain.bin").string();
    const int fd = ::open(plain.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    for (const auto& d : data)
      if (::write(fd, d.data(), d.size() * sizeof(float)) < 0) std::perror("write");
    ::fsync(fd);
    ::close(fd);
    best_plain = std::min(best_plain, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("bench checkpoint: %.0f MB in %lld tensors, best of %d\n", bytes / 1e6, (long long)tensors, runs);
  std::printf("  MPI-IO checkpoint (1 rank)  %8.1f MB/s\n  plain write + fsync         %8.1f MB/s\n  ratio %.2f\n",
              bytes / 1e6 / best_ckpt, bytes / 1e6 / best_plain, best_plain / best_ckpt);
  fs::remove_all(dir);
  return 0;
}

}  // namespace starflow::tools
