// The training loop (spec §8): noise augmentation, condition dropout for guidance, the NLL plus latent-norm
// regulariser, data-parallel gradient averaging, optional clipping, AdamW with warm-up + cosine, skipped
// non-finite steps, optional EMA, JSONL metrics, progress, and checkpoints that resume bit-exactly.
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

namespace starflow::jobs {

struct StepMetrics {
  int64_t step = 0;          // optimiser steps taken after this one
  double loss = 0, nll = 0, bits_per_dim = 0, latent_norm = 0, grad_norm = 0, lr = 0;
  double seconds = 0, images_per_second = 0;
  double comm_wait_seconds = 0, comm_span_seconds = 0;  // DP all-reduce: not hidden by backward / in all
  bool skipped = false;
};

class Trainer {
 public:
  // grid: the TP × DP layout (config.tp must match its TP width). `data` yields this DP rank's batches; the
  // ranks of one TP group must be given identical data.
  Trainer(const TrainConfig& config, parallel::ProcessGrid& grid, BatchSource& data);

  // Resumes from the newest complete checkpoint in the checkpoint directory, if any; returns its path.
  std::string resume_if_possible();
  // A fresh run's starting weights from official-name safetensors (`starflow convert`'s export, or weights
  // from elsewhere), instead of the random initialisation; the file's `config` must be this model's. Every
  // rank keeps its TP shard. Throws "<path>: ..." naming the differing keys or the tensor at fault.
  void load_initial_weights(const std::string& path);
  // Runs until `config.steps` optimiser steps (or `stop_at` if smaller and > 0), or until `should_stop()`
  // returns true between steps (preemption). Writes checkpoints as configured and a final one.
  void run(int64_t stop_at = 0, const std::function<bool()>& should_stop = {});
  std::string write_checkpoint();

  int64_t step() const { return step_; }
  const core::StarFlowModel<float>& model() const { return model_; }
  core::StarFlowModel<float>& model() { return model_; }
  const std::vector<StepMetrics>& history() const { return history_; }
  int64_t skipped_steps() const { return skipped_total_; }

 private:
  StepMetrics train_step();
  void log(const StepMetrics& m);
  void write_loss_curve() const;
  void fill_condition(const TrainBatch& batch, core::Rng& rng, std::vector<float>& y) const;
  double gradient_norm_squared() const;

  TrainConfig cfg_;
  parallel::ProcessGrid& grid_;
  parallel::MpiCommunicator& comm_;  // the data-parallel group
  BatchSource& data_;
  core::StarFlowModel<float> model_;
  parallel::DataParallelOptimizer optimizer_;
  parallel::GradientBuckets buckets_;
  core::WarmupCosineSchedule schedule_;
  std::vector<float> ema_;
  int64_t step_ = 0, bad_in_row_ = 0, skipped_total_ = 0;
  std::vector<StepMetrics> history_;
  std::string checkpoint_dir_;
  std::unique_ptr<PreviewGrid> preview_;  // rank 0, when sample_every > 0
};

}  // namespace starflow::jobs
