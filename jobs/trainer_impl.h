// BasicTrainer's definitions, instantiated per backend: jobs/trainer.cpp for the CPU, jobs/cuda/cuda_training.cpp
// for CUDA. Every random draw of a step (noise augmentation, condition dropout) comes from a generator keyed by
// (seed, the batch's global position, rank), so a resumed run repeats the uninterrupted one bit for bit without
// saving generator state.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/io/model_weights.h"
#include "core/models/model_transfer.h"
#include "core/random.h"
#include "jobs/checkpoint.h"
#include "jobs/trainer.h"
#include "parallel/error_agreement.h"

namespace starflow::jobs {
namespace trainer_detail {

constexpr double kHalfLog2Pi = 0.91893853320467274178;

uint64_t step_key(uint64_t seed, int64_t position, int rank);
// The key of the posterior draw of the sample at global place `place` in the run (the batch's position plus
// its offset in the global batch): the same whatever the data-parallel layout, and on resume.
uint64_t posterior_key(uint64_t seed, int64_t place);
// A live progress line (rewritten in place) only for a person watching one process.
bool live_progress();
// "channels 64 in the checkpoint, 32 in the config; ..." for the keys that differ (`where`: "checkpoint").
std::string config_difference(const nlohmann::json& checkpoint, const nlohmann::json& config,
                              const std::string& where = "checkpoint");
// The slices of one state buffer (host memory) this rank writes. `buffer` holds flat elements [lo, hi) (the
// whole flat buffer, or this rank's ZeRO-1 part) starting at flat element `base`. Each element of the
// checkpoint must come from exactly one rank: tensor-parallel shards from their TP rank, whole tensors from
// their owner TP rank; across DP either from the rank whose ZeRO-1 part holds it (dp_partitioned) or from the
// owner DP rank.
std::vector<CheckpointSlice> owned_slices(const core::ParameterView& v, const float* buffer, int64_t base, int64_t lo,
                                          int64_t hi, bool dp_partitioned, size_t index, const CheckpointOwners& owners,
                                          parallel::ProcessGrid& grid);
// The metrics line, the progress line and the loss curve (rank 0).
void append_metrics(const TrainConfig& cfg, const StepMetrics& s, const std::vector<StepMetrics>& history);
void write_loss_curve(const TrainConfig& cfg);
void check_batch_layout(const TrainConfig& cfg, const parallel::ProcessGrid& grid, const BatchSource& data);

// A host view of fp32 state: the buffer itself on a host backend, a downloaded copy otherwise.
template <class Backend>
class HostStaging {
 public:
  explicit HostStaging(const Backend& be) : be_(be) {}
  const float* read(const float* data, int64_t n) {
    if constexpr (Backend::kHostMemory) {
      return data;
    } else {
      copies_.emplace_back(static_cast<size_t>(n));
      be_.download(copies_.back().data(), data, n);
      return copies_.back().data();
    }
  }
  // A host buffer to fill for `data` (itself on a host backend); upload() copies the filled ones over.
  float* write(float* data, int64_t n) {
    if constexpr (Backend::kHostMemory) {
      return data;
    } else {
      copies_.emplace_back(static_cast<size_t>(n));
      targets_.push_back({data, n, copies_.size() - 1});
      return copies_.back().data();
    }
  }
  void upload() {
    for (const Target& t : targets_) be_.upload(t.data, copies_[t.copy].data(), t.n);
    targets_.clear();
  }

 private:
  struct Target {
    float* data;
    int64_t n;
    size_t copy;
  };
  const Backend& be_;
  std::vector<std::vector<float>> copies_;
  std::vector<Target> targets_;
};

}  // namespace trainer_detail

template <class Backend>
BasicTrainer<Backend>::BasicTrainer(const TrainConfig& config, parallel::ProcessGrid& grid, BatchSource& data,
                                    core::Communicator* tp, core::Communicator* dp_gradients)
    : cfg_(config),
      grid_(grid),
      comm_(grid.dp()),
      data_(data),
      model_(config.model, tp ? tp : Backend::kHostMemory ? &grid.tp() : nullptr, config.tp_shallow),
      be_(model_.backend()),
      optimizer_(be_, grid.dp(), model_.layout().total_size(),
                 core::AdamWConfig{config.beta1, config.beta2, config.adam_eps, config.weight_decay}, config.zero1),
      buckets_(dp_gradients ? *dp_gradients : static_cast<core::Communicator&>(grid.dp()), model_.layout(),
               model_.gradients().data(), Backend::kElementType, config.bucket_mb << 20, be_.stream()) {
  if (!Backend::kHostMemory && ((grid.tp_size() > 1 && !tp) || (grid.dp_size() > 1 && !dp_gradients)))
    throw std::logic_error("BasicTrainer: a device backend needs device communicators for its TP and DP groups");
  trainer_detail::check_batch_layout(cfg_, grid_, data_);
  null_condition_ = data_.null_condition();
  schedule_ = {cfg_.lr, cfg_.min_lr, cfg_.warmup_steps, cfg_.steps};
  denoiser_begin_ = model_.layout().total_size();
  if (model_.has_denoiser()) {
    // Its tensors come last in the layout (the official state_dict order): one contiguous tail.
    const auto& views = model_.layout().views();
    const std::string prefix = "learnable_self_denoiser.";
    size_t first = views.size();
    for (size_t i = 0; i < views.size(); ++i)
      if (views[i].name.rfind(prefix, 0) == 0) first = std::min(first, i);
    for (size_t i = first; i < views.size(); ++i)
      if (views[i].name.rfind(prefix, 0) != 0)
        throw std::logic_error("the learnable self-denoiser's tensors are not the layout's tail");
    denoiser_begin_ = views[first].offset;
    // The official trainer's separate AdamW for the denoiser: betas (0.9, 0.999), weight decay 1e-4.
    optimizer_.set_second_group(denoiser_begin_, core::AdamWConfig{0.9, 0.999, cfg_.adam_eps, 1e-4});
    denoiser_schedule_ = {cfg_.denoiser_lr, cfg_.denoiser_lr * cfg_.min_lr / cfg_.lr, cfg_.warmup_steps, cfg_.steps};
  }
  model_.init_parameters(cfg_.seed);  // identical on every rank: same seed
  optimizer_.take_weights(model_.parameters().data());
  model_.set_recompute(cfg_.recompute_layers);
  if (cfg_.ema > 0) {
    Backend::resize(ema_, static_cast<size_t>(model_.layout().total_size()));
    be_.upload(ema_.data(), host_weights(false).data(), model_.layout().total_size());
  }
  checkpoint_dir_ = cfg_.checkpoint_dir.empty() ? cfg_.output_dir + "/checkpoints" : cfg_.checkpoint_dir;
  if (grid_.world_rank() == 0) std::filesystem::create_directories(cfg_.output_dir);
  // Built on every rank, so that a bad autoencoder or caption fails everywhere alike; the TP group of DP
  // rank 0 samples the previews together (the deep block is split over it), its TP rank 0 writes them.
  if (cfg_.sample_every > 0) preview_ = std::make_unique<PreviewGrid>(cfg_);
  if (grid_.dp_rank() != 0) preview_.reset();
  watchdog_ = std::make_unique<parallel::Watchdog>(cfg_.watchdog_seconds, grid_.world_rank(), grid_.world().comm());
  // Every rank's host name, once, for the straggler report.
  constexpr int kHost = 64;
  std::vector<char> mine(kHost, 0), all(static_cast<size_t>(kHost) * grid_.world_size(), 0);
  watchdog_->host().copy(mine.data(), kHost - 1);
  MPI_Allgather(mine.data(), kHost, MPI_CHAR, all.data(), kHost, MPI_CHAR, grid_.world().comm());
  for (int r = 0; r < grid_.world_size(); ++r) hosts_.emplace_back(all.data() + size_t(r) * kHost);
  watchdog_->set_hosts(hosts_);
  checkpoint_owners_ = trainer_detail::checkpoint_owners(model_.layout().views(), grid_.tp_size(), grid_.dp_size());
  if (cfg_.checkpoint_async && cfg_.checkpoint_every > 0) {
    if (BackgroundCheckpoint::supported()) {
      background_ = std::make_unique<BackgroundCheckpoint>(grid_.world().comm());
      // The snapshot buffer now (allocated, its pages touched or pinned), not in the first checkpoint's step.
      size_t elements = 0;
      const auto tensors = checkpoint_tensors(optimizer_.weights(model_.parameters().data()),
                                              optimizer_.first_moment().data(), optimizer_.second_moment().data(),
                                              ema_.empty() ? nullptr : ema_.data());
      for (const CheckpointTensor& t : tensors)
        for (const CheckpointSlice& c : t.slices) elements += static_cast<size_t>(c.end - c.begin);
      snapshot_.resize(elements);
    }
    else if (grid_.world_rank() == 0)
      std::fprintf(stderr, "starflow train: MPI gives no MPI_THREAD_MULTIPLE: checkpoints are written synchronously\n");
  }
  grid_.world().barrier();
}

template <class Backend>
void BasicTrainer<Backend>::report_stragglers(double work_seconds) {
  const int n = grid_.world_size();
  if (n < 2 || cfg_.straggler_ratio <= 0) return;
  std::vector<double> work(static_cast<size_t>(n), 0.0);
  work[grid_.world_rank()] = work_seconds;
  grid_.world().all_reduce_sum(work.data(), n);
  if (grid_.world_rank() != 0 || (last_straggler_report_ >= 0 && step_ - last_straggler_report_ < cfg_.log_every))
    return;
  std::vector<double> sorted = work;
  std::sort(sorted.begin(), sorted.end());
  const double median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  for (int r = 0; r < n; ++r)
    // Under 50 ms of excess is scheduling noise, not a node problem (tiny test steps).
    if (median > 0 && work[r] > cfg_.straggler_ratio * median && work[r] - median > 0.05) {
      std::fprintf(stderr, "starflow straggler: rank %d on %s worked %.3f s in step %lld, %.1fx the median %.3f s "
                   "(straggler_ratio %.2g); training goes on\n", r, hosts_[r].c_str(), work[r],
                   (long long)step_, work[r] / median, median, cfg_.straggler_ratio);
      last_straggler_report_ = step_;
    }
}

template <class Backend>
std::vector<float> BasicTrainer<Backend>::host_weights(bool prefer_ema) {
  const int64_t n = model_.layout().total_size();
  const float* src = prefer_ema && !ema_.empty() ? ema_.data() : optimizer_.weights(model_.parameters().data());
  std::vector<float> out(static_cast<size_t>(n));
  be_.download(out.data(), src, n);
  return out;
}

template <class Backend>
void BasicTrainer<Backend>::weights_changed() {
  T* params = model_.parameters().data();
  if constexpr (parallel::DataParallelOptimizer<Backend>::kMaster)
    be_.narrow(params, optimizer_.weights(params), model_.layout().total_size());
}

template <class Backend>
void BasicTrainer<Backend>::fill_condition(const TrainBatch& batch, core::Rng& rng, double drop_probability,
                                           std::vector<float>& y) const {
  const auto& m = cfg_.model;
  if (!m.conditional()) return;
  const int64_t B = batch.size, L = m.txt_size, E = m.txt_dim;
  y.assign(B * L * E, 0.f);
  for (int64_t b = 0; b < B; ++b) {
    const bool drop = rng.uniform() < drop_probability;  // classifier-free guidance: train the null condition
    if (L == 1 && !batch.labels.empty()) {
      y[b * E + (drop ? E - 1 : batch.labels[b])] = 1.f;  // one-hot; index E−1 is the null class (spec §1.6)
    } else if (!batch.text.empty()) {
      // Text: the null caption's embedding (all zeros for the word-vector encoder, whose data has none).
      if (!drop) std::copy(batch.text.begin() + b * L * E, batch.text.begin() + (b + 1) * L * E, y.begin() + b * L * E);
      else if (!null_condition_.empty()) std::copy(null_condition_.begin(), null_condition_.end(), y.begin() + b * L * E);
    } else {
      throw std::runtime_error("the model is conditional but the data carries no labels or text");
    }
  }
}

template <class Backend>
StepMetrics BasicTrainer<Backend>::train_step() {
  const auto t0 = std::chrono::steady_clock::now();
  const auto& m = cfg_.model;
  watchdog_->progress(step_, parallel::Phase::kData);
  TrainBatch batch = data_.next();
  const int64_t B = batch.size, n = static_cast<int64_t>(batch.latents.size());
  if (!batch.latent_std.empty()) {
    // A posterior sample per sample, drawn from its own key (before the step's noise, which it leaves as it was).
    const int64_t per_sample = n / B;
    for (int64_t b = 0; b < B; ++b) {
      core::Rng draw(trainer_detail::posterior_key(cfg_.seed, batch.position + comm_.rank() * B + b));
      for (int64_t i = b * per_sample; i < (b + 1) * per_sample; ++i)
        batch.latents[i] += float(batch.latent_std[i] * draw.normal());
    }
  }
  // Keyed by the DP rank: the ranks of a TP group draw the same noise for their shared batch.
  core::Rng rng(trainer_detail::step_key(cfg_.seed, batch.position, comm_.rank()));
  for (int64_t i = 0; i < n; ++i) batch.latents[i] += float(cfg_.noise_std * rng.normal());
  std::vector<float> y;
  fill_condition(batch, rng, cfg_.drop_label, y);
  Backend::grow(x_, static_cast<size_t>(n));
  core::from_host(be_, x_.data(), batch.latents.data(), n);
  if (m.conditional()) {
    Backend::grow(y_, y.size());
    core::from_host(be_, y_.data(), y.data(), static_cast<int64_t>(y.size()));
  }

  watchdog_->progress(step_, parallel::Phase::kForward);
  model_.zero_gradients();
  const core::LossParts loss =
      model_.forward(x_.data(), m.conditional() ? y_.data() : nullptr, B, cfg_.latent_norm_regularization);
  // Backward starts each gradient bucket's all-reduce over the DP group as soon as the bucket is complete.
  watchdog_->progress(step_, parallel::Phase::kBackward);
  buckets_.begin();
  double denoiser_loss = -1;
  if (model_.has_denoiser()) {
    // The denoiser learns the flow's own denoising direction: target σ_n·numel·∂loss/∂x of this batch
    // (detached), loss mean((pred − target)²); its gradients reach only its parameters, whose buckets the flow's
    // backward leaves open, so finish() below reduces them with the rest.
    Backend::grow(dx_, static_cast<size_t>(n));
    model_.backward(dx_.data(), true, &buckets_);
    be_.scale(dx_.data(), double(n) * cfg_.noise_std, n);
    denoiser_loss = model_.denoiser_forward(x_.data(), m.conditional() ? y_.data() : nullptr, dx_.data(), B);
    model_.denoiser_backward();
  } else {
    model_.backward(nullptr, true, &buckets_);
  }
  watchdog_->progress(step_, parallel::Phase::kAllReduce);
  const double comm_wait = buckets_.finish();

  // Average gradients and losses over the data-parallel ranks (equal local batches: the mean of means).
  T* g = model_.gradients().data();
  const int64_t total = model_.layout().total_size();
  if (comm_.size() > 1) be_.scale(g, 1.0 / double(comm_.size()), total);
  const double sq = gradient_norm_squared();
  report_stragglers(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() - comm_wait);
  double stats[5] = {loss.total, loss.nll, loss.latent_norm, std::isfinite(loss.total) ? 0.0 : 1.0, denoiser_loss};
  comm_.all_reduce_sum(stats, 5);
  watchdog_->progress(step_, parallel::Phase::kOptimizer);
  StepMetrics s;
  s.loss = stats[0] / comm_.size();
  s.nll = stats[1] / comm_.size();
  s.latent_norm = stats[2] / comm_.size();
  s.grad_norm = std::sqrt(sq);
  s.bits_per_dim = (s.nll + trainer_detail::kHalfLog2Pi) / std::log(2.0);
  s.denoiser_loss = model_.has_denoiser() ? stats[4] / comm_.size() : -1;
  s.skipped = stats[3] > 0 || !std::isfinite(s.grad_norm);
  if (s.skipped) {
    ++bad_in_row_;
    ++skipped_total_;
    if (bad_in_row_ >= cfg_.max_bad_steps)
      // Every rank decides this from the same all-reduced figures: an agreed error, reported once.
      throw parallel::AgreedError("training aborted: " + std::to_string(bad_in_row_) +
                                  " non-finite steps in a row (the last checkpoint is intact)");
  } else {
    bad_in_row_ = 0;
    // Clipping is the flow's (its gradients' norm); the denoiser's gradients are left as they are.
    if (cfg_.grad_clip > 0 && s.grad_norm > cfg_.grad_clip) be_.scale(g, cfg_.grad_clip / s.grad_norm, denoiser_begin_);
    s.lr = schedule_.lr(step_);
    T* params = model_.parameters().data();
    optimizer_.step(params, g, s.lr, model_.has_denoiser() ? denoiser_schedule_.lr(step_) : 0.0);
    if (!ema_.empty()) be_.ema_update(ema_.data(), optimizer_.weights(params), cfg_.ema, total);
    ++step_;
  }
  be_.synchronize();  // the step's time is the device's too
  s.step = step_;
  s.comm_wait_seconds = comm_wait;
  s.comm_span_seconds = buckets_.last_comm_span();
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.images_per_second = cfg_.batch_size / s.seconds;
  return s;
}

template <class Backend>
double BasicTrainer<Backend>::gradient_norm_squared() const {
  // Whole tensors count once; tensor-parallel shards are summed over the TP group (every TP rank holds the
  // replicated tensors' identical gradients).
  const T* g = model_.gradients().data();
  double sums[2] = {0, 0};  // replicated, sharded
  for (const core::ParameterView& v : model_.layout().views())
    if (v.offset < denoiser_begin_)  // the flow's (the denoiser has its own optimizer and is not clipped)
      sums[v.shard.split() ? 1 : 0] += be_.sum_squares(g + v.offset, v.size);
  if (grid_.tp_size() > 1) grid_.tp().all_reduce_sum(&sums[1], 1);
  return sums[0] + sums[1];
}

template <class Backend>
void BasicTrainer<Backend>::log(const StepMetrics& s) {
  history_.push_back(s);
  if (grid_.world_rank() == 0) trainer_detail::append_metrics(cfg_, s, history_);
}

template <class Backend>
void BasicTrainer<Backend>::run(int64_t stop_at, const std::function<bool()>& should_stop) {
  const int64_t end = stop_at > 0 ? std::min(stop_at, cfg_.steps) : cfg_.steps;
  // A fresh run's baseline: the held-out figure of the initial weights.
  if (!heldout_.batches.empty() && step_ == 0) evaluate_and_log();
  while (step_ < end) {
    const StepMetrics s = train_step();
    watchdog_->progress(step_, parallel::Phase::kBetweenSteps);
    log(s);
    // A background write that failed on any rank fails the job here, on every rank alike.
    if (background_ && background_->in_flight()) background_->poll();
    if (!heldout_.batches.empty() && !s.skipped && step_ % cfg_.eval_every == 0) evaluate_and_log();
    if (!s.skipped && cfg_.checkpoint_every > 0 && step_ % cfg_.checkpoint_every == 0 && step_ < end) {
      if (background_) checkpoint_in_background();
      else write_checkpoint();
    }
    if (preview_ && !s.skipped && step_ % cfg_.sample_every == 0) {
      watchdog_->progress(step_, parallel::Phase::kPreview);
      // The preview samples on the CPU from the host's copy of the weights (on a host backend, the buffer
      // itself), over the grid's MPI tensor-parallel group.
      if constexpr (Backend::kHostMemory && std::is_same_v<T, float>)
        preview_->write(step_, ema_.empty() ? model_.parameters() : ema_, &grid_.tp());
      else
        preview_->write(step_, host_weights(true), &grid_.tp());
    }
    if (should_stop) {
      // Every rank must agree, or the collective checkpoint below would hang.
      double stop = should_stop() ? 1 : 0;
      watchdog_->progress(step_, parallel::Phase::kAllReduce);
      grid_.world().all_reduce_max(&stop, 1);
      if (stop > 0) break;
    }
  }
  if (grid_.world_rank() == 0 && trainer_detail::live_progress()) std::printf("\n");
  write_checkpoint();
  if (grid_.world_rank() == 0) write_loss_curve();
}

template <class Backend>
void BasicTrainer<Backend>::write_loss_curve() const {
  trainer_detail::write_loss_curve(cfg_);
}

template <class Backend>
std::vector<CheckpointTensor> BasicTrainer<Backend>::checkpoint_tensors(const float* weights, const float* m,
                                                                        const float* v, const float* ema) const {
  const auto& views = model_.layout().views();
  const int64_t total = model_.layout().total_size(), begin = optimizer_.begin(), end = optimizer_.end();
  std::vector<CheckpointTensor> tensors;
  for (size_t i = 0; i < views.size(); ++i) {
    const core::ParameterView& view = views[i];
    auto add = [&](const std::string& prefix, const float* buffer, int64_t base, int64_t lo, int64_t hi,
                   bool partitioned) {
      CheckpointTensor t;
      t.name = prefix + view.name;
      t.shape = view.global_shape;
      t.slices = trainer_detail::owned_slices(view, buffer, base, lo, hi, partitioned, i, checkpoint_owners_, grid_);
      tensors.push_back(std::move(t));
    };
    add("model.", weights, 0, 0, total, false);
    add("adam_m.", m, begin, begin, end, optimizer_.zero1());
    add("adam_v.", v, begin, begin, end, optimizer_.zero1());
    if (ema) add("ema.", ema, 0, 0, total, false);
  }
  return tensors;
}

template <class Backend>
nlohmann::json BasicTrainer<Backend>::checkpoint_meta() const {
  return {{"model_config", nlohmann::json::parse(cfg_.model.to_official_json())},
          {"train_config", cfg_.source_text},
          {"step", step_},
          {"adam_steps", optimizer_.steps()},
          {"data_cursor", data_.cursor()},
          {"bad_steps_in_row", bad_in_row_},
          {"skipped_steps", skipped_total_},
          {"seed", cfg_.seed},
          {"dp_size", grid_.dp_size()},
          {"tp_size", grid_.tp_size()},
          {"zero1", optimizer_.zero1()},
          {"best_eval_bits_per_dim", std::isfinite(best_eval_) ? nlohmann::json(best_eval_) : nlohmann::json()}};
}

template <class Backend>
double BasicTrainer<Backend>::evaluate() {
  const auto& m = cfg_.model;
  const int64_t total = model_.layout().total_size();
  T* params = model_.parameters().data();
  // With EMA, the EMA weights stand in for the model's during the evaluation.
  Buffer<T> saved;
  if (!ema_.empty()) {
    Backend::resize(saved, static_cast<size_t>(total));
    be_.copy(saved.data(), params, total);
    be_.narrow(params, ema_.data(), total);
  }
  // One sample per forward, each NLL in its place in the set, summed in that order: the figure is the same
  // for any data-parallel layout (the ranks' parts of a batch are forwarded alike).
  std::vector<double> nll(static_cast<size_t>(heldout_.total_samples), 0.0);
  core::Rng unused(0);
  std::vector<float> y;
  for (const TrainBatch& b : heldout_.batches) {
    const int64_t per_x = static_cast<int64_t>(b.latents.size()) / b.size;
    fill_condition(b, unused, 0.0, y);
    const int64_t per_y = m.conditional() ? m.txt_size * m.txt_dim : 0;
    Backend::grow(x_, static_cast<size_t>(per_x));
    if (per_y) Backend::grow(y_, static_cast<size_t>(per_y));
    for (int64_t s = 0; s < b.size; ++s) {
      core::from_host(be_, x_.data(), b.latents.data() + s * per_x, per_x);
      if (per_y) core::from_host(be_, y_.data(), y.data() + s * per_y, per_y);
      const core::LossParts loss = model_.forward(x_.data(), per_y ? y_.data() : nullptr, 1, 0.0);
      nll[static_cast<size_t>(b.position + comm_.rank() * b.size + s)] = loss.nll;
    }
  }
  comm_.all_reduce_sum(nll.data(), static_cast<int64_t>(nll.size()));  // every place is filled by one DP rank
  if (!ema_.empty()) be_.copy(params, saved.data(), total);
  double sum = 0;
  for (double v : nll) sum += v;
  return (sum / double(nll.size()) + trainer_detail::kHalfLog2Pi) / std::log(2.0);
}

template <class Backend>
void BasicTrainer<Backend>::evaluate_and_log() {
  watchdog_->progress(step_, parallel::Phase::kForward);
  const auto t0 = std::chrono::steady_clock::now();
  const double bits = evaluate();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const bool best = cfg_.keep_best && bits < best_eval_;
  const char* weights = ema_.empty() ? "model" : "ema";
  if (grid_.world_rank() == 0) {
    std::ofstream(cfg_.output_dir + "/metrics.jsonl", std::ios::app)
        << nlohmann::json{{"step", step_}, {"eval_bits_per_dim", bits}, {"eval_weights", weights},
                          {"eval_samples", heldout_.total_samples}, {"eval_seconds", seconds}, {"eval_best", best}}
               .dump()
        << "\n";
    std::printf("%seval   step %6lld  held-out %.4f bits/dim (%s weights, %lld samples) in %.2f s%s\n",
                trainer_detail::live_progress() ? "\n" : "", (long long)step_, bits, weights,
                (long long)heldout_.total_samples, seconds, best ? "  (best: checkpointed)" : "");
    std::fflush(stdout);
  }
  if (best) {
    best_eval_ = bits;
    write_checkpoint_to(checkpoint_dir_ + "/best", 1);
  }
}

template <class Backend>
std::string BasicTrainer<Backend>::write_checkpoint() {
  return write_checkpoint_to(checkpoint_dir_, static_cast<int>(cfg_.keep_checkpoints));
}

template <class Backend>
std::string BasicTrainer<Backend>::write_checkpoint_to(const std::string& dir, int keep) {
  watchdog_->progress(step_, parallel::Phase::kCheckpoint);
  const auto t0 = std::chrono::steady_clock::now();
  if (background_) background_->wait();
  const int64_t total = model_.layout().total_size(), moments = optimizer_.end() - optimizer_.begin();
  // The fp32 state on the host: the buffers themselves on the CPU, copies of the device's otherwise.
  trainer_detail::HostStaging<Backend> host(be_);
  const float* weights = host.read(optimizer_.weights(model_.parameters().data()), total);
  const float* m = host.read(optimizer_.first_moment().data(), moments);
  const float* v = host.read(optimizer_.second_moment().data(), moments);
  const float* ema = ema_.empty() ? nullptr : host.read(ema_.data(), total);
  const std::string path = jobs::write_checkpoint(grid_.world().comm(), dir, step_, checkpoint_meta(),
                                                  checkpoint_tensors(weights, m, v, ema), keep);
  checkpoint_timings_.push_back(
      {step_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), false});
  return path;
}

template <class Backend>
void BasicTrainer<Backend>::checkpoint_in_background() {
  watchdog_->progress(step_, parallel::Phase::kCheckpoint);
  const auto t0 = std::chrono::steady_clock::now();
  background_->wait();  // at most one write in flight (and the snapshot buffer is free again)
  // This rank's runs, first pointing into the backend's buffers, then into the snapshot they are copied to
  // (on a GPU: device-to-pinned copies, one synchronisation). Only the runs this rank writes are copied:
  // with DP, each rank holds 1/dp of the replicated weights' runs.
  std::vector<CheckpointTensor> tensors =
      checkpoint_tensors(optimizer_.weights(model_.parameters().data()), optimizer_.first_moment().data(),
                         optimizer_.second_moment().data(), ema_.empty() ? nullptr : ema_.data());
  size_t elements = 0;
  for (const CheckpointTensor& t : tensors)
    for (const CheckpointSlice& s : t.slices) elements += static_cast<size_t>(s.end - s.begin);
  snapshot_.resize(elements);
  float* at = snapshot_.data();
  for (CheckpointTensor& t : tensors)
    for (CheckpointSlice& s : t.slices) {
      be_.download_async(at, s.data, s.end - s.begin);
      s.data = at;
      at += s.end - s.begin;
    }
  be_.synchronize();
  background_->start(checkpoint_dir_, step_, checkpoint_meta(), std::move(tensors),
                     static_cast<int>(cfg_.keep_checkpoints));
  checkpoint_timings_.push_back(
      {step_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), true});
}

template <class Backend>
void BasicTrainer<Backend>::load_initial_weights(const std::string& path) {
  const core::io::SafeTensorsFile file = core::io::SafeTensorsFile::open(path);
  const nlohmann::json theirs = nlohmann::json::parse(core::io::read_config(file).to_official_json());
  const nlohmann::json ours = nlohmann::json::parse(cfg_.model.to_official_json());
  if (theirs != ours)
    throw std::runtime_error(path + ": the weights are for another model config (" +
                             trainer_detail::config_difference(theirs, ours, "file") + ")");
  const int64_t total = model_.layout().total_size();
  trainer_detail::HostStaging<Backend> host(be_);
  core::io::load_weights(model_.layout(), host.write(optimizer_.weights(model_.parameters().data()), total), file);
  host.upload();
  weights_changed();
  if (!ema_.empty()) be_.upload(ema_.data(), host_weights(false).data(), total);
}

template <class Backend>
std::string BasicTrainer<Backend>::resume_if_possible() {
  std::string path;
  if (grid_.world_rank() == 0) path = newest_checkpoint_file(checkpoint_dir_);  // damaged: an error, not a step back
  int64_t len = static_cast<int64_t>(path.size());
  grid_.world().broadcast(&len, sizeof len, 0);
  path.resize(len);
  grid_.world().broadcast(path.data(), len, 0);
  if (path.empty()) return "";
  CheckpointReader reader(grid_.world().comm(), path);
  const nlohmann::json& meta = reader.info().header.at("meta");
  // What the trainer writes; a checkpoint from elsewhere (a converted or hand-made file) is refused by name.
  for (const char* key : {"model_config", "step", "adam_steps", "bad_steps_in_row", "skipped_steps", "data_cursor"})
    if (!meta.is_object() || !meta.contains(key) || (std::string(key) != "model_config" && std::string(key) != "data_cursor" &&
                                                      !meta[key].is_number_integer()))
      throw std::runtime_error(path + ": not a training checkpoint (its header's meta has no integer or object '" +
                               key + "')");
  const nlohmann::json ours = nlohmann::json::parse(cfg_.model.to_official_json());
  if (meta.at("model_config") != ours)
    throw std::runtime_error(path + ": the checkpoint is for another model config (" +
                             trainer_detail::config_difference(meta.at("model_config"), ours) + ")");
  // Each rank reads what it holds: whole tensors where it holds them whole (their checksums verified on
  // the way), and only its runs of a TP shard or a ZeRO-1 part. Any layout loads any checkpoint, and the
  // world reads about one file plus each rank's share, not one file per rank. On a device backend the reads
  // land in host buffers that are uploaded once all of them succeeded.
  const int64_t total = model_.layout().total_size(), begin = optimizer_.begin(), end = optimizer_.end();
  trainer_detail::HostStaging<Backend> host(be_);
  float* weights = host.write(optimizer_.weights(model_.parameters().data()), total);
  float* m = host.write(optimizer_.first_moment().data(), end - begin);
  float* v = host.write(optimizer_.second_moment().data(), end - begin);
  float* ema = ema_.empty() ? nullptr : host.write(ema_.data(), total);
  std::set<std::string> verified;  // read whole here, so checked against their CRC-32
  auto load = [&](const std::string& name, const core::ParameterView& view, float* buffer, int64_t base, int64_t lo,
                  int64_t hi) {
    const int64_t a = std::max(lo, view.offset), b = std::min(hi, view.offset + view.size);
    if (a >= b) return;
    if (!view.shard.split() && a == view.offset && b == view.offset + view.size) {
      reader.read(name, buffer + (a - base));
      verified.insert(name);
      return;
    }
    core::for_each_global_run(view, a - view.offset, b - view.offset, [&](int64_t l, int64_t g, int64_t n) {
      reader.read(name, buffer + (view.offset + l - base), g, g + n);
    });
  };
  std::vector<std::string> names;
  // A read failing on one rank (truncation, a bad run) must not leave the others waiting: every error is
  // collected and agreed on below.
  std::string error;
  try {
    for (const core::ParameterView& view : model_.layout().views()) {
      if (reader.shape("model." + view.name) != view.global_shape)
        throw std::runtime_error(path + ": tensor 'model." + view.name + "' has shape " +
                                 core::shape_string(reader.shape("model." + view.name)) + ", expected " +
                                 core::shape_string(view.global_shape));
      load("model." + view.name, view, weights, 0, 0, total);
      load("adam_m." + view.name, view, m, begin, begin, end);
      load("adam_v." + view.name, view, v, begin, begin, end);
      names.insert(names.end(), {"model." + view.name, "adam_m." + view.name, "adam_v." + view.name});
      if (ema) {
        if (reader.has("ema." + view.name)) {
          load("ema." + view.name, view, ema, 0, 0, total);
          names.push_back("ema." + view.name);
        } else {
          std::copy_n(weights + view.offset, view.size, ema + view.offset);
        }
      }
    }
    // Tensors read in parts are checked whole by one rank each (round-robin), so a corrupt shard is refused
    // like a corrupt whole tensor, and every rank throws the same error.
    std::vector<float> scratch;
    for (size_t i = 0; i < names.size(); ++i) {
      if (static_cast<int>(i % grid_.world_size()) != grid_.world_rank() || verified.count(names[i])) continue;
      scratch.resize(static_cast<size_t>(core::numel(reader.shape(names[i]))));
      reader.read(names[i], scratch.data());
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  parallel::agree_on_error(grid_.world().comm(), error);
  host.upload();
  weights_changed();
  step_ = meta.at("step").get<int64_t>();
  optimizer_.set_steps(meta.at("adam_steps").get<int64_t>());
  bad_in_row_ = meta.at("bad_steps_in_row").get<int64_t>();
  skipped_total_ = meta.at("skipped_steps").get<int64_t>();
  if (meta.contains("best_eval_bits_per_dim") && meta["best_eval_bits_per_dim"].is_number())
    best_eval_ = meta["best_eval_bits_per_dim"].get<double>();
  data_.restore(meta.at("data_cursor"));
  return path;
}

}  // namespace starflow::jobs
