// starflow train CONFIG.yaml: the training job under mpirun/srun (one process per data-parallel rank) or
// as a single process. SIGUSR1 stops it at the next step boundary with a checkpoint (SLURM's warning before
// a time limit or preemption); with --preempt-requeue under SLURM the job then requeues itself.
#include <mpi.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "data/shard_dataset.h"
#include "jobs/shard_batches.h"
#include "jobs/synthetic_latents.h"
#include "jobs/train_config.h"
#include "jobs/trainer.h"
#include "parallel/process_grid.h"
#include "slurm/cluster.h"
#include "slurm/preemption.h"
#include "tools/options.h"
#include "tools/train_command.h"

extern "C" void openblas_set_num_threads(int);

namespace starflow::tools {

// Collective over comm: whether any rank's `error` is non-empty. If so, rank 0 prints each distinct error once,
// "<prefix>: <error>" when every rank failed alike, else naming the ranks it happened on (a thousand ranks
// failing alike print one line, not a thousand; one node's failure still says which ranks).
bool report_errors_once(MPI_Comm comm, const std::string& error, const char* prefix) {
  int failed = error.empty() ? 0 : 1, any = 0, rank = 0, size = 1;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, comm);
  if (!any) return false;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const int len = static_cast<int>(error.size());
  std::vector<int> lens(rank == 0 ? size : 0), offsets(lens.size());
  MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, comm);
  std::string all;
  if (rank == 0) {
    for (int r = 0, off = 0; r < size; off += lens[r], ++r) offsets[r] = off;
    all.resize(static_cast<size_t>(offsets.back() + lens.back()));
  }
  MPI_Gatherv(error.data(), len, MPI_CHAR, all.data(), lens.data(), offsets.data(), MPI_CHAR, 0, comm);
  if (rank != 0) return true;
  std::vector<std::pair<std::string, std::vector<int>>> distinct;  // in order of the first rank that hit each
  for (int r = 0; r < size; ++r) {
    if (lens[r] == 0) continue;
    const std::string e = all.substr(offsets[r], lens[r]);
    auto it = std::find_if(distinct.begin(), distinct.end(), [&](const auto& d) { return d.first == e; });
    if (it == distinct.end()) distinct.push_back({e, {r}});
    else it->second.push_back(r);
  }
  for (const auto& [e, ranks] : distinct) {
    if (static_cast<int>(ranks.size()) == size) {
      std::fprintf(stderr, "%s: %s\n", prefix, e.c_str());
      continue;
    }
    std::string who = ranks.size() == 1 ? "rank " : "ranks ";
    for (size_t i = 0; i < ranks.size() && i < 8; ++i) who += (i ? ", " : "") + std::to_string(ranks[i]);
    if (ranks.size() > 8) who += " and " + std::to_string(ranks.size() - 8) + " more";
    std::fprintf(stderr, "%s: %s: %s\n", prefix, who.c_str(), e.c_str());
  }
  std::fflush(stderr);
  return true;
}

// Threads per rank: the configured number, else OMP_NUM_THREADS (how a SLURM job passes --cpus-per-task:
// the cores of the node are not all ours there), else the cores divided among the ranks on this node, so
// that mpirun -np 2 on a 2-core machine does not oversubscribe (OpenMP spin-waits collapse when it does).
int threads_per_rank(int configured) {
  if (configured > 0) return configured;
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env && std::atoi(env) > 0) return std::atoi(env);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int local = 1;
  MPI_Comm_size(node, &local);
  MPI_Comm_free(&node);
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / local);
}

void check_shards_fit(const jobs::TrainConfig& cfg, const data::ShardHeader& h) {
  const core::Shape want = {cfg.model.in_channels, cfg.model.img_size, cfg.model.img_size};
  if (h.latent_shape != want)
    throw std::runtime_error(cfg.data + ": the shards hold latents of shape " + core::shape_string(h.latent_shape) +
                             " but the config's model expects " + core::shape_string(want));
  if (h.conditioning == data::Conditioning::TextEmbeddings &&
      (h.text_length != cfg.model.txt_size || h.text_dim != cfg.model.txt_dim))
    throw std::runtime_error(cfg.data + ": the shards hold text of " + std::to_string(h.text_length) + "×" +
                             std::to_string(h.text_dim) + " but the config says txt_size " +
                             std::to_string(cfg.model.txt_size) + ", txt_dim " + std::to_string(cfg.model.txt_dim));
}

void check_train_job(const jobs::TrainConfig& cfg, const std::string& config_path, int64_t ranks, bool open_data) {
  if (cfg.batch_size % ranks != 0)
    throw std::runtime_error(config_path + ": key 'batch_size': " + std::to_string(cfg.batch_size) +
                             " is not divisible by the " + std::to_string(ranks) + " data-parallel ranks");
  if (cfg.data == "synthetic" || !open_data) return;
  // The shards' headers only (no prefetching): they exist, agree with each other and fit the model.
  data::ShardDatasetOptions options;
  options.dp_size = ranks;
  options.batch_per_rank = cfg.batch_size / ranks;
  const data::ShardDataset shards(data::find_shards(cfg.data), options);
  check_shards_fit(cfg, shards.header());
  if (shards.steps_per_epoch() < 1)
    throw std::runtime_error(cfg.data + ": " + std::to_string(shards.num_samples()) +
                             " samples are fewer than one global batch of " + std::to_string(cfg.batch_size));
}

int run_train(int argc, char** argv) {
  // First, so that a warning signal arriving while MPI starts up cannot kill the job unsaved.
  slurm::install_stop_request_handler();
  std::string config_path;
  int64_t steps_override = 0;
  bool fresh = false, preempt_requeue = false;
  const Option options[] = {
      {"--config", "FILE", "the training config (YAML; also accepted as the first argument)",
       [&](const std::string& v) { config_path = v; }},
      {"--steps", "N", "override the config's total optimiser steps", [&](const std::string& v) { steps_override = parse_int(v); }},
      {"--fresh", nullptr, "ignore existing checkpoints instead of resuming from the newest",
       [&](const std::string&) { fresh = true; }},
      {"--preempt-requeue", nullptr,
       "under SLURM: after the checkpoint that SIGUSR1 asks for, requeue the job (it resumes from there)",
       [&](const std::string&) { preempt_requeue = true; }},
  };
  std::vector<char*> args(argv, argv + argc);
  if (argc >= 2 && argv[1][0] != '-') {  // positional CONFIG.yaml
    config_path = argv[1];
    args.erase(args.begin() + 1);
  }
  const int parsed = parse_options("train", "Trains a STARFlow model: starflow train CONFIG.yaml [options]", options,
                                   static_cast<int>(args.size()), args.data());
  if (parsed >= 0) return parsed;
  if (config_path.empty()) {
    std::fprintf(stderr, "starflow train: no config given (starflow train CONFIG.yaml)\n");
    return 2;
  }
  // SLURM_JOB_ID is what `scontrol requeue` needs; without it there is nothing to requeue.
  const char* slurm_job = std::getenv("SLURM_JOB_ID");
  if (preempt_requeue && !slurm_job)
    std::fprintf(stderr, "starflow train: --preempt-requeue: not running under SLURM (no SLURM_JOB_ID); "
                         "SIGUSR1 will checkpoint and stop without requeueing\n");
  // MPI_THREAD_MULTIPLE lets the gradient all-reduce run on its own thread (parallel/gradient_buckets.h);
  // with less, the buckets fall back to non-blocking collectives.
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int status = 0, rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  bool preempted = false;
  bool same_everywhere = true;  // config and layout errors happen alike on every rank: report them once
  bool reported = false;        // already printed by report_errors_once
  try {
    jobs::TrainConfig cfg = jobs::TrainConfig::from_file(config_path);
    if (steps_override > 0) cfg.steps = steps_override;
    const int threads = threads_per_rank(static_cast<int>(cfg.threads));
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    // The layout first: a grid that cannot be formed is refused before any data is opened.
    parallel::ProcessGrid grid(MPI_COMM_WORLD, static_cast<int>(cfg.tp), static_cast<int>(cfg.dp));
    parallel::MpiCommunicator& comm = grid.dp();  // batches are split over the data-parallel ranks
    // Opening the data can fail alike everywhere (a wrong path) or on some ranks only (a node without the
    // mount): the ranks agree before going on, and each distinct error is printed once, with its ranks.
    std::unique_ptr<jobs::BatchSource> data;
    std::string data_error;
    try {
      if (cfg.data == "synthetic") {
        const int64_t classes = cfg.model.conditional() ? cfg.model.txt_dim - 1 : 0;
        data = std::make_unique<jobs::SyntheticLatents>(cfg.model.in_channels, cfg.model.img_size, classes, cfg.seed,
                                                        cfg.batch_size, comm.rank(), comm.size());
      } else {
        auto shards =
            std::make_unique<jobs::ShardBatches>(cfg.data, cfg.seed, cfg.batch_size, comm.rank(), comm.size());
        check_shards_fit(cfg, shards->header());
        if (rank == 0)
          std::printf("data: %lld samples in %s (%s)\n", (long long)shards->num_samples(), cfg.data.c_str(),
                      shards->header().describe().c_str());
        data = std::move(shards);
      }
    } catch (const std::exception& e) {
      data_error = *e.what() ? e.what() : "cannot open the data";
    }
    if (report_errors_once(MPI_COMM_WORLD, data_error, "starflow train")) {
      reported = true;
      throw std::runtime_error("the data could not be opened");
    }
    same_everywhere = false;
    jobs::Trainer trainer(cfg, grid, *data);
    std::string from;
    if (!fresh) {
      from = trainer.resume_if_possible();
      if (!from.empty() && rank == 0) std::printf("resumed from %s at step %lld\n", from.c_str(), (long long)trainer.step());
    }
    if (from.empty() && !cfg.init_weights.empty()) {
      trainer.load_initial_weights(cfg.init_weights);
      if (rank == 0) std::printf("starting from the weights in %s\n", cfg.init_weights.c_str());
    }
    if (rank == 0) {
      std::printf("training %lld parameters on %s%s × %d thread(s), global batch %lld\n",
                  (long long)trainer.model().layout().global_parameter_count(), grid.describe().c_str(),
                  cfg.zero1 && grid.dp_size() > 1 ? " with ZeRO-1" : "", threads, (long long)cfg.batch_size);
      if (!grid.tp_within_node())
        std::printf("warning: a tensor-parallel group spans nodes; its all-reduces will be slow\n");
    }
    // The ranks agree on the stop after each step (Trainer::run all-reduces it), then checkpoint.
    trainer.run(0, [] { return slurm::stop_requested(); });
    preempted = trainer.step() < cfg.steps;
    if (rank == 0 && preempted)
      std::printf("stopped by SIGUSR1 (%d received) at step %lld of %lld; checkpoint written\n",
                  slurm::stop_request_count(), (long long)trainer.step(), (long long)cfg.steps);
    else if (rank == 0)
      std::printf("done: step %lld, %lld skipped step(s)\n", (long long)trainer.step(), (long long)trainer.skipped_steps());
    std::fflush(stdout);
  } catch (const std::exception& e) {
    if (!reported && (!same_everywhere || rank == 0)) std::fprintf(stderr, "starflow train: %s\n", e.what());
    status = 2;
  }
  MPI_Finalize();
  // After MPI_Finalize: a requeue ends this job's processes at once, and every rank's part of the
  // checkpoint is already on disk (the collective write returned everywhere).
  if (status == 0 && preempted && preempt_requeue && slurm_job && rank == 0) {
    try {
      slurm::requeue_job(slurm_job);
      std::printf("requeued SLURM job %s: it resumes from this checkpoint\n", slurm_job);
      std::fflush(stdout);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "starflow train: the checkpoint is safe, but requeueing failed: %s\n", e.what());
      status = 1;
    }
  }
  return status;
}

}  // namespace starflow::tools
