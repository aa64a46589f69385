// starflow train CONFIG.yaml: the training job under mpirun/srun (one process per data-parallel rank) or
// as a single process. SIGUSR1 stops it at the next step boundary with a checkpoint (SLURM's warning before
// a time limit or preemption); with --preempt-requeue under SLURM the job then requeues itself.
#include <mpi.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
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
#ifdef STARFLOW_HAVE_CUDA_TRAINING
#include "jobs/cuda/cuda_training.h"
#endif
#include "parallel/error_agreement.h"
#include "parallel/process_grid.h"
#include "slurm/cluster.h"
#include "slurm/preemption.h"
#include "tools/cpu_threads.h"
#include "tools/mpi_session.h"
#include "tools/options.h"
#include "tools/train_command.h"

namespace starflow::tools {

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

// The trainer for the config's device: the CPU's, or the GPUs' in a build with the CUDA backend and NCCL.
std::unique_ptr<jobs::TrainingRun> make_training(const jobs::TrainConfig& cfg, parallel::ProcessGrid& grid,
                                                 jobs::BatchSource& data) {
  if (cfg.device == "cuda") {
#ifdef STARFLOW_HAVE_CUDA_TRAINING
    return jobs::make_cuda_training(cfg, grid, data);
#else
    throw std::runtime_error("device cuda: this starflow was built without the CUDA backend and NCCL (nvcc or "
                             "NCCL was not found when it was configured)");
#endif
  }
  return std::make_unique<jobs::Trainer>(cfg, grid, data);
}

int run_train(int argc, char** argv) {
  // First, so that a warning signal arriving while MPI starts up cannot kill the job unsaved, and so that
  // every thread started from here on (MPI's, OpenMP's, ours) has SIGUSR1 blocked: see preemption.h.
  const slurm::StopRequestListener stop_listener;
  std::string config_path;
  int64_t steps_override = 0;
  std::string device, precision;
  bool fresh = false, preempt_requeue = false;
  const Option options[] = {
      {"--config", "FILE", "the training config (YAML; also accepted as the first argument)",
       [&](const std::string& v) { config_path = v; }},
      {"--steps", "N", "override the config's total optimiser steps", [&](const std::string& v) { steps_override = parse_int(v); }},
      {"--device", "cpu|cuda", "override the config's device (cuda: one GPU per rank, NCCL between them)",
       [&](const std::string& v) { device = v; }},
      {"--precision", "fp32|bf16", "override the config's precision (bf16: CUDA only, fp32 master weights)",
       [&](const std::string& v) { precision = v; }},
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
  MpiSession mpi(argc, argv);
  const int rank = mpi.rank();
  int status = 0;
  bool preempted = false;
  bool same_everywhere = true;  // config and layout errors happen alike on every rank: rank 0 reports them
  bool in_training_loop = false;
  try {
    jobs::TrainConfig cfg = jobs::TrainConfig::from_file(config_path);
    if (steps_override > 0) cfg.steps = steps_override;
    if (!device.empty() || !precision.empty()) {
      if (!device.empty()) cfg.device = device;
      if (!precision.empty()) cfg.precision = precision;
      cfg.validate("--device/--precision");
    }
    const int threads = threads_per_rank(static_cast<int>(cfg.threads));
    set_cpu_threads(threads);
    // The layout first: a grid that cannot be formed is refused before any data is opened.
    parallel::ProcessGrid grid(MPI_COMM_WORLD, static_cast<int>(cfg.tp), static_cast<int>(cfg.dp));
    parallel::MpiCommunicator& comm = grid.dp();  // batches are split over the data-parallel ranks
    // Opening the data can fail alike everywhere (a wrong path) or on some ranks only (a node without the
    // mount): the ranks agree before going on, and each distinct error is printed once, with its ranks.
    std::unique_ptr<jobs::BatchSource> data;
    jobs::HeldoutSet heldout;
    std::string data_error;
    try {
      if (cfg.data == "synthetic") {
        const int64_t classes = cfg.model.conditional() ? cfg.model.txt_dim - 1 : 0;
        data = std::make_unique<jobs::SyntheticLatents>(cfg.model.in_channels, cfg.model.img_size, classes, cfg.seed,
                                                        cfg.batch_size, comm.rank(), comm.size());
      } else {
        std::vector<std::string> paths = data::find_shards(cfg.data);
        if (cfg.eval_every > 0 && cfg.eval_fraction > 0) {
          auto [train, held] = jobs::split_heldout_shards(std::move(paths), cfg.eval_fraction, cfg.data);
          paths = std::move(train);
          heldout = jobs::heldout_from_shards(held, cfg.data + " (held out: eval_fraction)", cfg, comm.rank(),
                                              comm.size());
        }
        auto shards = std::make_unique<jobs::ShardBatches>(std::move(paths), cfg.data, cfg.seed, cfg.batch_size,
                                                           comm.rank(), comm.size());
        check_shards_fit(cfg, shards->header());
        if (rank == 0)
          std::printf("data: %lld samples in %s (%s)\n", (long long)shards->num_samples(), cfg.data.c_str(),
                      shards->header().describe().c_str());
        data = std::move(shards);
      }
      if (cfg.eval_every > 0 && !cfg.eval_data.empty())
        heldout = jobs::heldout_from_shards(data::find_shards(cfg.eval_data), cfg.eval_data, cfg, comm.rank(),
                                            comm.size());
      else if (cfg.eval_every > 0 && cfg.data == "synthetic")
        heldout = jobs::heldout_synthetic(cfg, comm.rank(), comm.size());
    } catch (const std::exception& e) {
      data_error = *e.what() ? e.what() : "cannot open the data";
    }
    parallel::agree_on_error(MPI_COMM_WORLD, data_error);
    same_everywhere = false;
    const std::unique_ptr<jobs::TrainingRun> run = make_training(cfg, grid, *data);
    jobs::TrainingRun& trainer = *run;
    if (cfg.eval_every > 0) {
      if (rank == 0)
        std::printf("evaluating every %lld steps on %s\n", (long long)cfg.eval_every, heldout.description.c_str());
      trainer.set_heldout(std::move(heldout));
    }
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
                  (long long)trainer.parameter_count(), grid.describe().c_str(),
                  cfg.zero1 && grid.dp_size() > 1 ? " with ZeRO-1" : "", threads, (long long)cfg.batch_size);
      if (cfg.device == "cuda") std::printf("on CUDA, one GPU per rank, %s\n", cfg.effective_precision().c_str());
      if (!grid.tp_within_node())
        std::printf("warning: a tensor-parallel group spans nodes; its all-reduces will be slow\n");
    }
    // The ranks agree on the stop after each step (Trainer::run all-reduces it), then checkpoint.
    in_training_loop = true;
    trainer.run(0, [] { return slurm::stop_requested(); });
    in_training_loop = false;
    preempted = trainer.step() < cfg.steps;
    if (rank == 0 && preempted)
      std::printf("stopped by SIGUSR1 (%d received) at step %lld of %lld; checkpoint written\n",
                  slurm::stop_request_count(), (long long)trainer.step(), (long long)cfg.steps);
    else if (rank == 0)
      std::printf("done: step %lld, %lld skipped step(s)\n", (long long)trainer.step(), (long long)trainer.skipped_steps());
    std::fflush(stdout);
  } catch (const std::exception& e) {
    // An error of this rank alone inside the loop (a shard it cannot read, memory): the others are in, or about
    // to enter, a collective this rank will never join. Errors every rank meets together are AgreedErrors.
    if (in_training_loop && mpi.size() > 1 && !dynamic_cast<const parallel::AgreedError*>(&e))
      parallel::abort_job_for_local_error(MPI_COMM_WORLD, e, "starflow train", 2);
    if (!same_everywhere) parallel::print_error_once(MPI_COMM_WORLD, e, "starflow train");
    else if (rank == 0) std::fprintf(stderr, "starflow train: %s\n", e.what());
    status = 2;
  }
  mpi.finalize();
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
