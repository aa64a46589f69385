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
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/models/starflow_model.h"
#include "core/optim/adamw.h"
#include "core/random.h"
#include "jobs/background_checkpoint.h"
#include "jobs/batch_source.h"
#include "jobs/heldout_set.h"
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
  double denoiser_loss = -1;  // the learnable self-denoiser's loss (-1: the model has none)
  bool skipped = false;
};

// How long one checkpoint held training up: the whole write when synchronous; the snapshot into host memory
// (plus any wait for the previous write still in flight) when asynchronous.
struct CheckpointTiming {
  int64_t step = 0;
  double blocked_seconds = 0;
  bool asynchronous = false;
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
  // returns true between steps (preemption). Writes checkpoints as configured (in the background with
  // checkpoint_async) and a final one, after any background write has finished.
  virtual void run(int64_t stop_at = 0, const std::function<bool()>& should_stop = {}) = 0;
  // A synchronous checkpoint of the current state (after any background write has finished); its path.
  virtual std::string write_checkpoint() = 0;
  virtual int64_t step() const = 0;
  virtual int64_t skipped_steps() const = 0;
  virtual int64_t parameter_count() const = 0;  // of the whole model, all TP shards
  virtual const std::vector<StepMetrics>& history() const = 0;
  virtual const std::vector<CheckpointTiming>& checkpoint_timings() const = 0;
  // The held-out set evaluated every eval_every steps (this rank's part; before run()).
  virtual void set_heldout(HeldoutSet set) = 0;
  // The held-out bits/dim of the current weights (the EMA weights when EMA is on); collective over the grid.
  virtual double evaluate() = 0;
};

namespace trainer_detail {
// Which ranks write each parameter view's checkpoint runs: a view split over TP is written by every TP rank (its
// shard) of one DP rank (dp[i]); a whole view by one TP rank (tp[i]) of one DP rank. Chosen largest view first,
// each to the least loaded rank(s) so far, ties to the lowest: every rank writes about as many bytes (a
// round-robin by index would give one rank every weight matrix and the other every bias). The same on every rank.
struct CheckpointOwners {
  std::vector<int> tp, dp;
};
CheckpointOwners checkpoint_owners(const std::vector<core::ParameterView>& views, int tp_size, int dp_size);
}  // namespace trainer_detail

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
  const std::vector<CheckpointTiming>& checkpoint_timings() const override { return checkpoint_timings_; }
  void set_heldout(HeldoutSet set) override { heldout_ = std::move(set); }
  double evaluate() override;
  const core::FlowModel<Backend>& model() const { return model_; }
  core::FlowModel<Backend>& model() { return model_; }

 private:
  StepMetrics train_step();
  void log(const StepMetrics& m);
  void write_loss_curve() const;
  // The model's condition for a batch: one-hot labels or text, each replaced by the null condition with
  // probability `drop` (classifier-free guidance training; 0 for evaluation).
  void fill_condition(const TrainBatch& batch, core::Rng& rng, double drop, std::vector<float>& y) const;
  // evaluate() every eval_every steps: logged (progress line, metrics.jsonl), and with keep_best a new best
  // is checkpointed into <checkpoint dir>/best.
  void evaluate_and_log();
  std::string write_checkpoint_to(const std::string& dir, int keep);
  double gradient_norm_squared() const;
  // The fp32 weights (the optimizer's master, or the model's own) / the EMA or those weights, on the host.
  std::vector<float> host_weights(bool prefer_ema);
  // After the fp32 weights changed outside the optimizer (initial weights, resume): the model's copy.
  void weights_changed();
  // Every rank's work time of this step (its time outside the DP gradient wait) to rank 0, which names the
  // ranks above straggler_ratio × the median (at most one report per log_every steps).
  void report_stragglers(double work_seconds);
  // This rank's pieces of the checkpoint (its runs of the weights, moments and EMA, pointing into the given
  // copies of those buffers) and the header's meta.
  std::vector<CheckpointTensor> checkpoint_tensors(const float* weights, const float* m, const float* v,
                                                   const float* ema) const;
  nlohmann::json checkpoint_meta() const;
  // The asynchronous checkpoint: waits for the write in flight, snapshots this rank's pieces into
  // snapshot_ and starts the background write.
  void checkpoint_in_background();

  TrainConfig cfg_;
  parallel::ProcessGrid& grid_;
  parallel::MpiCommunicator& comm_;  // the data-parallel group, for the host-side statistics
  BatchSource& data_;
  core::FlowModel<Backend> model_;
  const Backend& be_;
  parallel::DataParallelOptimizer<Backend> optimizer_;
  parallel::GradientBuckets buckets_;
  core::WarmupCosineSchedule schedule_, denoiser_schedule_;
  // The learnable self-denoiser's parameters: flat elements [denoiser_begin_, total) (total: none), its own
  // AdamW group; its training target is the flow's input gradient, kept in dx_.
  int64_t denoiser_begin_ = 0;
  Buffer<T> dx_;
  Buffer<float> ema_;  // empty without EMA
  Buffer<T> x_, y_;    // this step's inputs in the backend's memory
  std::vector<float> null_condition_;  // the data's null caption, padded (empty: zeros)
  int64_t step_ = 0, bad_in_row_ = 0, skipped_total_ = 0;
  std::vector<StepMetrics> history_;
  std::string checkpoint_dir_;
  // What the background write reads, kept between writes; declared before background_, whose destructor waits
  // for the write in flight.
  typename Backend::template HostBuffer<float> snapshot_;
  std::unique_ptr<BackgroundCheckpoint> background_;  // with checkpoint_async and checkpoint_every
  std::vector<CheckpointTiming> checkpoint_timings_;
  trainer_detail::CheckpointOwners checkpoint_owners_;  // who writes each view's runs
  HeldoutSet heldout_;
  double best_eval_ = std::numeric_limits<double>::infinity();  // the best held-out bits/dim so far (keep_best)
  std::unique_ptr<PreviewGrid> preview_;  // rank 0, when sample_every > 0
  std::unique_ptr<parallel::Watchdog> watchdog_;  // the hang watchdog (watchdog_seconds) and fault injection
  std::vector<std::string> hosts_;        // every world rank's host (rank 0's straggler report)
  int64_t last_straggler_report_ = -1;
};

// The CPU trainer (fp32).
using Trainer = BasicTrainer<core::CpuBackend<float>>;
extern template class BasicTrainer<core::CpuBackend<float>>;

}  // namespace starflow::jobs
