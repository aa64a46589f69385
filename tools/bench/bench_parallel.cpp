// starflow bench parallel (under mpirun -np 2): one training step (forward + backward + gradient averaging
// + AdamW) of bench config A at the same global batch on 1 rank, as DP 2 (bucketed all-reduce overlapped
// with backward) and as TP 2 (the deep block split; every block split), each rank with the same thread
// count; and how much of the DP all-reduce the overlap hides (blocking on its own against the wait left).
#include <mpi.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "core/models/starflow_model.h"
#include "core/random.h"
#include "parallel/data_parallel_optimizer.h"
#include "parallel/gradient_buckets.h"
#include "parallel/process_grid.h"
#include "tools/bench/bench_configs.h"
#include "tools/bench/bench_stats.h"
#include "tools/cpu_threads.h"
#include "tools/mpi_session.h"
#include "tools/options.h"

namespace starflow::tools {
namespace {

struct StepTimes {
  double step_ms = 0, wait_ms = 0, blocking_allreduce_ms = 0;
};

// Times `steps` training steps (after 2 warm-up steps) on `grid`; batch is the global batch.
StepTimes time_steps(parallel::ProcessGrid& grid, const core::ModelPreset& bc, int64_t batch, int steps, int64_t bucket_mb,
                     bool split_shallow = false) {
  core::StarFlowModel<float> model(bc.model, &grid.tp(), split_shallow);
  model.init_parameters(1);
  parallel::DataParallelOptimizer<core::CpuBackend<float>> opt(
      model.backend(), grid.dp(), static_cast<int64_t>(model.parameters().size()), core::AdamWConfig{}, false);
  parallel::GradientBuckets buckets(grid.dp(), model.layout(), model.gradients().data(), bucket_mb << 20);
  const auto& c = bc.model;
  const int64_t local = batch / grid.dp_size();
  core::Rng rng(7 + grid.dp_rank());
  std::vector<float> x(local * c.in_channels * c.img_size * c.img_size), y(local * c.txt_size * c.txt_dim);
  for (float& v : x) v = float(rng.normal());
  for (float& v : y) v = float(rng.normal());
  std::vector<double> ms, wait;
  for (int s = 0; s < steps + 2; ++s) {
    grid.world().barrier();
    const auto t0 = std::chrono::steady_clock::now();
    model.zero_gradients();
    model.forward(x.data(), y.data(), local, 1e-4);
    buckets.begin();
    model.backward(nullptr, true, &buckets);
    const double w = buckets.finish();
    opt.step(model.parameters().data(), model.gradients().data(), 1e-4);
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (s >= 2) ms.push_back(dt), wait.push_back(w * 1e3);
  }
  StepTimes t{median(ms), median(wait), 0};
  if (grid.dp_size() > 1) {
    // The same all-reduce with nothing to hide behind.
    std::vector<double> ar;
    for (int s = 0; s < steps; ++s) {
      grid.world().barrier();
      const double a = MPI_Wtime();
      grid.dp().all_reduce_sum(model.gradients().data(), static_cast<int64_t>(model.gradients().size()));
      ar.push_back((MPI_Wtime() - a) * 1e3);
    }
    t.blocking_allreduce_ms = median(ar);
  }
  // Every rank reports the slowest rank's numbers.
  double v[3] = {t.step_ms, t.wait_ms, t.blocking_allreduce_ms}, out[3];
  MPI_Allreduce(v, out, 3, MPI_DOUBLE, MPI_MAX, grid.world().comm());
  return {out[0], out[1], out[2]};
}

// Ranks other than 0 wait here without spinning a core while rank 0 measures alone.
void idle_until_rank0_done(MPI_Comm world, bool rank0) {
  MPI_Request r;
  MPI_Ibarrier(world, &r);
  if (rank0) {
    MPI_Wait(&r, MPI_STATUS_IGNORE);
    return;
  }
  for (int done = 0; !done;) {
    MPI_Test(&r, &done, MPI_STATUS_IGNORE);
    if (!done) usleep(2000);
  }
}

}  // namespace

int bench_parallel(int argc, char** argv) {
  std::string config = "A";
  int steps = 5, threads = 1;
  int64_t bucket_mb = 4;
  const Option options[] = {
      {"--config", "NAME", "bench config A or B (default A)", [&](const std::string& v) { config = v; }},
      {"--steps", "N", "timed steps per layout (default 5)", [&](const std::string& v) { steps = int(parse_int(v)); }},
      {"--threads", "N", "threads per rank (default 1: two ranks fill two cores)",
       [&](const std::string& v) { threads = int(parse_int(v)); }},
      {"--bucket-mb", "N", "gradient all-reduce bucket size (default 4)", [&](const std::string& v) { bucket_mb = parse_int(v); }},
  };
  const int parsed = parse_options("bench parallel",
                                   "Training step at 1 rank, DP 2 and TP 2 (run under mpirun -np 2).", options, argc, argv);
  if (parsed >= 0) return parsed;
  MpiSession mpi(argc, argv);
  int status = 0;
  try {
    const int rank = mpi.rank();
    if (mpi.size() != 2) throw std::runtime_error("run it on 2 ranks: mpirun -np 2 starflow bench parallel");
    set_cpu_threads(threads);
    const core::ModelPreset bc = bench_preset(config);
    const int64_t batch = bc.batch;

    // One rank alone, with one rank's threads and with both ranks' threads (the whole allocation).
    StepTimes one{}, one_all{};
    if (rank == 0) {
      parallel::ProcessGrid self(MPI_COMM_SELF, 1);
      one = time_steps(self, bc, batch, steps, bucket_mb);
      set_cpu_threads(2 * threads);
      one_all = time_steps(self, bc, batch, steps, bucket_mb);
      set_cpu_threads(threads);
    }
    idle_until_rank0_done(MPI_COMM_WORLD, rank == 0);
    MPI_Bcast(&one, sizeof one, MPI_BYTE, 0, MPI_COMM_WORLD);
    MPI_Bcast(&one_all, sizeof one_all, MPI_BYTE, 0, MPI_COMM_WORLD);
    parallel::ProcessGrid dp_grid(MPI_COMM_WORLD, 1);
    const StepTimes dp = time_steps(dp_grid, bc, batch, steps, bucket_mb);
    parallel::ProcessGrid tp_grid(MPI_COMM_WORLD, 2);
    const StepTimes tp = time_steps(tp_grid, bc, batch, steps, bucket_mb);
    const StepTimes tp_all = time_steps(tp_grid, bc, batch, steps, bucket_mb, /*split_shallow=*/true);

    if (rank == 0) {
      std::printf("bench parallel: config %s (width %lld, %lld blocks), global batch %lld, %d thread(s) per rank, "
                  "median of %d steps\n",
                  config.c_str(), (long long)bc.model.channels, (long long)bc.model.num_blocks, (long long)batch,
                  threads, steps);
      std::printf("  %-22s %10s %10s %9s\n", "layout", "ms/step", "img/s", "vs 1 rank");
      auto row = [&](const char* name, double ms) {
        std::printf("  %-22s %10.1f %10.1f %8.2fx\n", name, ms, batch * 1e3 / ms, one.step_ms / ms);
      };
      row("1 rank", one.step_ms);
      const std::string all = "1 rank x " + std::to_string(2 * threads) + " threads";
      row(all.c_str(), one_all.step_ms);
      row("DP 2 (bucketed)", dp.step_ms);
      row("TP 2 (deep block)", tp.step_ms);
      row("TP 2 (all blocks)", tp_all.step_ms);
      const double hidden = dp.blocking_allreduce_ms > 0 ? 1.0 - dp.wait_ms / dp.blocking_allreduce_ms : 0;
      std::printf("  DP all-reduce: %.2f ms blocking on its own, %.2f ms left after backward: %.0f%% hidden\n",
                  dp.blocking_allreduce_ms, dp.wait_ms, 100.0 * std::clamp(hidden, 0.0, 1.0));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "starflow bench parallel: %s\n", e.what());
    status = 2;
  }
  return status;
}

}  // namespace starflow::tools
