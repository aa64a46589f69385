// The training loop (spec §8): noise augmentation, condition dropout for guidance, the NLL plus latent-norm
// regulariser, data-parallel gradient averaging, optional clipping, AdamW with warm-up + cosine, skipped
// non-finite steps, optional EMA, JSONL metrics, progress, and checkpoints that resume bit-exactly.
//
// Written once against the model's backend: BasicTrainer<CpuBackend<float>> (`Trainer`) trains on the CPU;
// BasicTrainer<CudaBackend<T>> on GPUs (jobs/cuda/cuda_training.h builds it with its NCCL communicators). The
// optimizer state is fp32 in the backend's memory; checkpoints hold fp32 weights and moments under the same
// names on every backend, so a run moves between CPUs and GPUs by resuming.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/models/starflow_model.h"
#include "core/optim/adamw.h"
#include "core/random.h"
#include "jobs/batch_source.h"
#include "jobs/preview_grid.h"
#include "jobs/train_config.h"
#include "parallel/data_parallel_optimizer.h"
#include "parallel/gradient_buckets.h"
#include "parallel/process_grid.h"
#include "parallel/watchdog.h"

namespace starflow::jobs {

struct StepMetrics {
  int64_t step = 0;          // optimiser steps taken after this one
  double loss = 0, nll = 0, bits_per_dim = 0, latent_norm = 0, grad_norm = 0, lr = 0;
  double seconds = 0, images_per_second = 0;
  double comm_wait_seconds = 0, comm_span_seconds = 0;  // DP all-reduce: not hidden by backward / in all
  bool skipped = false;
};

// What `starflow train` drives, whatever the backend.
class TrainingRun {
 public:
  virtual ~TrainingRun() = default;
  // Resumes from the newest complete checkpoint in the checkpoint directory, if any; returns its path.
  virtual std::string resume_if_possible() = 0;
  // A fresh run's starting weights from official-name safetensors (`starflow convert`'s export, or weights
  // from elsewhere), instead of the random initialisation; the file's `config` must be this model's. Every
  // rank keeps its TP shard. Throws "<path>: ..." naming the differing keys or the tensor at fault.
  virtual void load_initial_weights(const std::string& path) = 0;
  // Runs until `config.steps` optimiser steps (or `stop_at` if smaller and > 0), or until `should_stop()`
  // returns true between steps (preemption). Writes checkpoints as configured and a final one.
  virtual void run(int64_t stop_at = 0, const std::function<bool()>& should_stop = {}) = 0;
  virtual std::string write_checkpoint() = 0;
  virtual int64_t step() const = 0;
  virtual int64_t skipped_steps() const = 0;
  virtual int64_t parameter_count() const = 0;  // of the whole model, all TP shards
  virtual const std::vector<StepMetrics>& history() const = 0;
};

template <class Backend>
class BasicTrainer final : public TrainingRun {
 public:
  using T = typename Backend::Scalar;
  template <class U>
  using Buffer = typename Backend::template Buffer<U>;

  // grid: the TP × DP layout (config.tp must match its TP width). `data` yields this DP rank's batches; the
  // ranks of one TP group must be given identical data. tp, dp_gradients: the communicators the model's
  // tensor-parallel reductions and the gradient buckets run on, in the backend's memory; null: the grid's MPI
  // communicators (host backends only; a device backend needs them whenever that group has several ranks).
  BasicTrainer(const TrainConfig& config, parallel::ProcessGrid& grid, BatchSource& data,
               core::Communicator* tp = nullptr, core::Communicator* dp_gradients = nullptr);

  std::string resume_if_possible() override;
  void load_initial_weights(const std::string& path) override;
  void run(int64_t stop_at = 0, const std::function<bool()>& should_stop = {}) override;
  std::string write_checkpoint() override;

  int64_t step() const override { return step_; }
  int64_t skipped_steps() const override { return skipped_total_; }
  int64_t parameter_count() const override { return model_.layout().global_parameter_count(); }
  const std::vector<StepMetrics>& history() const override { return history_; }
  const core::FlowModel<Backend>& model() const { return model_; }
  core::FlowModel<Backend>& model() { return model_; }

 private:
  StepMetrics train_step();
  void log(const StepMetrics& m);
  void write_loss_curve() const;
  void fill_condition(const TrainBatch& batch, core::Rng& rng, std::vector<float>& y) const;
  double gradient_norm_squared() const;
  // The fp32 weights (the optimizer's master, or the model's own) / the EMA or those weights, on the host.
  std::vector<float> host_weights(bool prefer_ema);
  // After the fp32 weights changed outside the optimizer (initial weights, resume): the model's copy.
  void weights_changed();
  // Every rank's work time of this step (its time outside the DP gradient wait) to rank 0, which names the
  // ranks above straggler_ratio × the median (at most one report per log_every steps).
  void report_stragglers(double work_seconds);

  TrainConfig cfg_;
  parallel::ProcessGrid& grid_;
  parallel::MpiCommunicator& comm_;  // the data-parallel group, for the host-side statistics
  BatchSource& data_;
  core::FlowModel<Backend> model_;
  const Backend& be_;
  parallel::DataParallelOptimizer<Backend> optimizer_;
  parallel::GradientBuckets buckets_;
  core::WarmupCosineSchedule schedule_;
  Buffer<float> ema_;  // empty without EMA
  Buffer<T> x_, y_;    // this step's inputs in the backend's memory
  std::vector<float> null_condition_;  // the data's null caption, padded (empty: zeros)
  int64_t step_ = 0, bad_in_row_ = 0, skipped_total_ = 0;
  std::vector<StepMetrics> history_;
  std::string checkpoint_dir_;
  std::unique_ptr<PreviewGrid> preview_;  // rank 0, when sample_every > 0
  std::unique_ptr<parallel::Watchdog> watchdog_;  // the hang watchdog (watchdog_seconds) and fault injection
  std::vector<std::string> hosts_;        // every world rank's host (rank 0's straggler report)
  int64_t last_straggler_report_ = -1;
};

// The CPU trainer (fp32).
using Trainer = BasicTrainer<core::CpuBackend<float>>;
extern template class BasicTrainer<core::CpuBackend<float>>;

}  // namespace starflow::jobs
