// starflow bench checkpoint: MB/s of the MPI-IO checkpoint writer (collective, CRC-32s, temp + sync +
// rename) against a plain sequential write + fsync of the same bytes, measured in the same run.
// With --train MB (under mpirun, e.g. 2 ranks): how long a training run of a model whose checkpoint is MB is
// blocked by each periodic checkpoint, synchronous against asynchronous (checkpoint_async), in the same run.
#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "jobs/checkpoint.h"
#include "jobs/synthetic_latents.h"
#include "jobs/train_config.h"
#include "jobs/trainer.h"
#include "parallel/process_grid.h"
#include "tools/bench/bench_stats.h"
#include "tools/cpu_threads.h"
#include "tools/mpi_session.h"
#include "tools/options.h"

namespace starflow::tools {
namespace {

namespace fs = std::filesystem;

struct Blocked {
  double median_blocked = 0, max_blocked = 0, median_step = 0, run_seconds = 0;
  int checkpoints = 0;
  std::vector<double> each;  // rank 0's blocked seconds per periodic checkpoint
};

// One training run on synthetic data with a checkpoint every `every` steps: the periodic checkpoints' blocked
// times (the final, always synchronous one excluded) and the median step time.
Blocked train_with_checkpoints(const std::string& model_yaml, const fs::path& dir, bool async, int steps, int every) {
  const std::string yaml = model_yaml + "steps: " + std::to_string(steps) + "\ncheckpoint_every: " +
                           std::to_string(every) + "\ncheckpoint_async: " + (async ? "true" : "false") +
                           "\noutput_dir: " + (dir / (async ? "async" : "sync")).string() + "\n";
  const jobs::TrainConfig cfg = jobs::TrainConfig::from_yaml(yaml, "bench checkpoint");
  parallel::ProcessGrid grid(MPI_COMM_WORLD, 1);
  jobs::SyntheticLatents data(cfg.model.in_channels, cfg.model.img_size, cfg.model.txt_dim - 1, cfg.seed,
                              cfg.batch_size, grid.dp_rank(), grid.dp_size());
  jobs::Trainer trainer(cfg, grid, data);
  grid.world().barrier();
  const auto t0 = std::chrono::steady_clock::now();
  trainer.run();
  grid.world().barrier();
  const double run_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Blocked b;
  std::vector<double> blocked, step_seconds;
  const auto& timings = trainer.checkpoint_timings();
  for (size_t i = 0; i + 1 < timings.size(); ++i) blocked.push_back(timings[i].blocked_seconds);
  for (const jobs::StepMetrics& s : trainer.history()) step_seconds.push_back(s.seconds);
  // Rank 0 reports the slowest rank's figures: training waits for the slowest.
  double local[2] = {blocked.empty() ? 0 : median(blocked), blocked.empty() ? 0 : *std::max_element(blocked.begin(), blocked.end())};
  MPI_Allreduce(MPI_IN_PLACE, local, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  b.median_blocked = local[0];
  b.max_blocked = local[1];
  b.median_step = median(step_seconds);
  b.checkpoints = static_cast<int>(blocked.size());
  b.run_seconds = run_seconds;
  b.each = blocked;
  return b;
}

int bench_training_checkpoints(int megabytes, int steps, int every) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  set_cpu_threads(threads_per_rank(0));
  // A model whose checkpoint (fp32 weights + two AdamW moments: 12 bytes per parameter) is about `megabytes`:
  // width 1024, ~12.6M parameters per layer, two blocks.
  const int64_t layers = std::max<int64_t>(1, std::llround(megabytes * 1e6 / 12 / (12.0 * 1024 * 1024) / 2));
  const std::string model = "channel_size: 4\nimg_size: 8\nchannels: 1024\nhead_dim: 64\nblocks: 2\n"
                            "layers_per_block: [" + std::to_string(layers) + ", " + std::to_string(layers) +
                            "]\ntxt_size: 1\ntxt_dim: 11\nbatch_size: " + std::to_string(2 * ranks) +
                            "\nwarmup_steps: 1\nlog_every: 100000\nkeep_checkpoints: 1\nseed: 5\n";
  fs::path dir;
  if (rank == 0) dir = fs::temp_directory_path() / ("starflow_bench_ckpt_train_" + std::to_string(::getpid()));
  std::string name = dir.string();
  int length = static_cast<int>(name.size());
  MPI_Bcast(&length, 1, MPI_INT, 0, MPI_COMM_WORLD);
  name.resize(length);
  MPI_Bcast(name.data(), length, MPI_CHAR, 0, MPI_COMM_WORLD);
  dir = name;
  const Blocked sync = train_with_checkpoints(model, dir, false, steps, every);
  const Blocked async = train_with_checkpoints(model, dir, true, steps, every);
  if (rank == 0) {
    const auto checkpoint = fs::directory_iterator(dir / "sync" / "checkpoints")->path();
    std::printf("bench checkpoint --train: %d ranks, %lld layers of width 1024, checkpoint %.0f MB (%s), "
                "%d steps, a checkpoint every %d\n", ranks, 2 * (long long)layers, double(fs::file_size(checkpoint)) / 1e6,
                checkpoint.filename().c_str(), steps, every);
    std::printf("  %-13s %13s %13s %11s %11s %12s\n", "checkpoints", "blocked (med)", "blocked (max)", "step (med)",
                "whole run", "checkpoints");
    const auto row = [](const char* name, const Blocked& b) {
      std::printf("  %-13s %11.3f s %11.3f s %9.3f s %9.1f s %12d   (rank 0:", name, b.median_blocked, b.max_blocked,
                  b.median_step, b.run_seconds, b.checkpoints);
      for (double t : b.each) std::printf(" %.3f", t);
      std::printf(" s)\n");
    };
    row("synchronous", sync);
    row("asynchronous", async);
    std::printf("  asynchronous blocks %.1f%% of synchronous (median)%s\n", 100 * async.median_blocked / sync.median_blocked,
                sync.median_blocked < 1 ? "; the synchronous write took under 1 s: use a larger --train" : "");
    fs::remove_all(dir);
  }
  return 0;
}

}  // namespace

int bench_checkpoint(int argc, char** argv) {
  int megabytes = 256, runs = 3, train_mb = 0, steps = 16, every = 5;
  const Option table[] = {
      int_option("--mb", megabytes, 1, "checkpoint size in MB (default 256)"),
      int_option("--runs", runs, 1, "runs of each writer; the best is reported (default 3)"),
      int_option("--train", train_mb, 0,
                 "instead: training blocked by checkpoints of about this many MB, synchronous vs asynchronous"),
      int_option("--steps", steps, 2, "--train: training steps per run (default 16)"),
      int_option("--every", every, 1, "--train: a checkpoint every this many steps (default 5)")};
  const int parsed = parse_options("bench checkpoint", "MPI-IO checkpoint writes against a plain sequential write.",
                                   table, argc, argv);
  if (parsed >= 0) return parsed;
  MpiSession mpi(argc, argv);
  if (train_mb > 0) return bench_training_checkpoints(train_mb, steps, every);
  if (mpi.size() > 1) {
    if (mpi.rank() == 0)
      std::fprintf(stderr, "starflow bench checkpoint: the writer benchmark runs as one process (--train runs under "
                           "mpirun): run it without mpirun/srun\n");
    return 2;
  }
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
