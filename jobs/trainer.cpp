// Trainer implementation. Every random draw of a step (noise augmentation, condition dropout) comes from a
// generator keyed by (seed, the batch's global position, rank), so a resumed run repeats the uninterrupted
// one bit for bit without saving generator state.
#include "jobs/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/random.h"
#include "core/io/model_weights.h"
#include "jobs/checkpoint.h"
#include "jobs/loss_plot.h"
#include "parallel/error_agreement.h"

namespace starflow::jobs {
namespace {

uint64_t step_key(uint64_t seed, int64_t position, int rank) {
  core::Rng r(seed ^ (0xD1B54A32D192ED03ull * static_cast<uint64_t>(position + 1)) ^
              (0x8CB92BA72F3D8DD7ull * static_cast<uint64_t>(rank + 1)));
  return r.next_u64();
}

constexpr double kHalfLog2Pi = 0.91893853320467274178;

// A live progress line (rewritten in place) only for a person watching one process: Open MPI hands its ranks
// a pseudo-terminal even when mpirun's own output goes to a file, so under mpirun we print log lines.
bool live_progress() {
  static const bool live = isatty(STDOUT_FILENO) && !std::getenv("OMPI_COMM_WORLD_SIZE");
  return live;
}

// "channels 64 in the checkpoint, 32 in the config; ..." for the keys that differ (`where`: "checkpoint").
std::string config_difference(const nlohmann::json& checkpoint, const nlohmann::json& config,
                              const std::string& where = "checkpoint") {
  std::string out;
  for (const auto& [key, value] : config.items()) {
    const nlohmann::json theirs = checkpoint.contains(key) ? checkpoint.at(key) : nlohmann::json();
    if (theirs != value)
      out += (out.empty() ? "" : "; ") + key + " " + theirs.dump() + " in the " + where + ", " + value.dump() + " in the config";
  }
  return out.empty() ? "different keys" : out;
}

}  // namespace

Trainer::Trainer(const TrainConfig& config, parallel::ProcessGrid& grid, BatchSource& data)
    : cfg_(config),
      grid_(grid),
      comm_(grid.dp()),
      data_(data),
      model_(config.model, &grid.tp(), config.tp_shallow),
      optimizer_(grid.dp(), static_cast<int64_t>(model_.parameters().size()),
                 core::AdamWConfig{config.beta1, config.beta2, config.adam_eps, config.weight_decay}, config.zero1),
      buckets_(grid.dp(), model_.layout(), model_.gradients().data(), config.bucket_mb << 20) {
  if (grid.tp_size() != cfg_.tp)
    throw std::runtime_error("the config says tp " + std::to_string(cfg_.tp) + " but the process grid has TP " +
                             std::to_string(grid.tp_size()));
  if (cfg_.batch_size % comm_.size() != 0)
    throw std::runtime_error("batch_size " + std::to_string(cfg_.batch_size) + " is not divisible by the " +
                             std::to_string(comm_.size()) + " data-parallel ranks");
  if (cfg_.model.conditional() && cfg_.model.txt_size == 1 && data_.num_classes() + 1 != cfg_.model.txt_dim)
    throw std::runtime_error("the data has " + std::to_string(data_.num_classes()) + " classes, so txt_dim must be " +
                             std::to_string(data_.num_classes() + 1) + " (classes + the null class), not " +
                             std::to_string(cfg_.model.txt_dim));
  schedule_ = {cfg_.lr, cfg_.min_lr, cfg_.warmup_steps, cfg_.steps};
  model_.init_parameters(cfg_.seed);  // identical on every rank: same seed
  model_.set_recompute(cfg_.recompute_layers);
  if (cfg_.ema > 0) ema_ = model_.parameters();
  checkpoint_dir_ = cfg_.checkpoint_dir.empty() ? cfg_.output_dir + "/checkpoints" : cfg_.checkpoint_dir;
  if (grid_.world_rank() == 0) std::filesystem::create_directories(cfg_.output_dir);
  // Built on every rank, so that a bad autoencoder or caption fails everywhere alike; the TP group of DP
  // rank 0 samples the previews together (the deep block is split over it), its TP rank 0 writes them.
  if (cfg_.sample_every > 0) preview_ = std::make_unique<PreviewGrid>(cfg_);
  if (grid_.dp_rank() != 0) preview_.reset();
  grid_.world().barrier();
}

void Trainer::fill_condition(const TrainBatch& batch, core::Rng& rng, std::vector<float>& y) const {
  const auto& m = cfg_.model;
  if (!m.conditional()) return;
  const int64_t B = batch.size, L = m.txt_size, E = m.txt_dim;
  y.assign(B * L * E, 0.f);
  for (int64_t b = 0; b < B; ++b) {
    const bool drop = rng.uniform() < cfg_.drop_label;  // classifier-free guidance: train the null condition
    if (L == 1 && !batch.labels.empty()) {
      y[b * E + (drop ? E - 1 : batch.labels[b])] = 1.f;  // one-hot; index E−1 is the null class (spec §1.6)
    } else if (!batch.text.empty()) {
      // Text: the null caption embeds to all-zero rows in our word-vector encoder.
      if (!drop) std::copy(batch.text.begin() + b * L * E, batch.text.begin() + (b + 1) * L * E, y.begin() + b * L * E);
    } else {
      throw std::runtime_error("the model is conditional but the data carries no labels or text");
    }
  }
}

StepMetrics Trainer::train_step() {
  const auto t0 = std::chrono::steady_clock::now();
  const auto& m = cfg_.model;
  TrainBatch batch = data_.next();
  const int64_t B = batch.size, n = static_cast<int64_t>(batch.latents.size());
  // Keyed by the DP rank: the ranks of a TP group draw the same noise for their shared batch.
  core::Rng rng(step_key(cfg_.seed, batch.position, comm_.rank()));
  for (int64_t i = 0; i < n; ++i) batch.latents[i] += float(cfg_.noise_std * rng.normal());
  std::vector<float> y;
  fill_condition(batch, rng, y);

  model_.zero_gradients();
  const core::LossParts loss =
      model_.forward(batch.latents.data(), m.conditional() ? y.data() : nullptr, B, cfg_.latent_norm_regularization);
  // Backward starts each gradient bucket's all-reduce over the DP group as soon as the bucket is complete.
  buckets_.begin();
  model_.backward(nullptr, true, &buckets_);
  const double comm_wait = buckets_.finish();

  // Average gradients and losses over the data-parallel ranks (equal local batches: the mean of means).
  std::vector<float>& g = model_.gradients();
  const float inv = 1.f / float(comm_.size());
  if (comm_.size() > 1)
    for (float& v : g) v *= inv;
  const double sq = gradient_norm_squared();
  double stats[4] = {loss.total, loss.nll, loss.latent_norm, std::isfinite(loss.total) ? 0.0 : 1.0};
  comm_.all_reduce_sum(stats, 4);
  StepMetrics s;
  s.loss = stats[0] / comm_.size();
  s.nll = stats[1] / comm_.size();
  s.latent_norm = stats[2] / comm_.size();
  s.grad_norm = std::sqrt(sq);
  s.bits_per_dim = (s.nll + kHalfLog2Pi) / std::log(2.0);
  s.skipped = stats[3] > 0 || !std::isfinite(s.grad_norm);
  if (s.skipped) {
    ++bad_in_row_;
    ++skipped_total_;
    if (bad_in_row_ >= cfg_.max_bad_steps)
      throw std::runtime_error("training aborted: " + std::to_string(bad_in_row_) +
                               " non-finite steps in a row (the last checkpoint is intact)");
  } else {
    bad_in_row_ = 0;
    if (cfg_.grad_clip > 0 && s.grad_norm > cfg_.grad_clip) {
      const float scale = float(cfg_.grad_clip / s.grad_norm);
      for (float& v : g) v *= scale;
    }
    s.lr = schedule_.lr(step_);
    optimizer_.step(model_.parameters(), g, s.lr);
    if (!ema_.empty()) {
      const float d = float(cfg_.ema);
      const std::vector<float>& p = model_.parameters();
      for (size_t i = 0; i < ema_.size(); ++i) ema_[i] = d * ema_[i] + (1.f - d) * p[i];
    }
    ++step_;
  }
  s.step = step_;
  s.comm_wait_seconds = comm_wait;
  s.comm_span_seconds = buckets_.last_comm_span();
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.images_per_second = cfg_.batch_size / s.seconds;
  return s;
}

double Trainer::gradient_norm_squared() const {
  // Whole tensors count once; tensor-parallel shards are summed over the TP group (every TP rank holds the
  // replicated tensors' identical gradients).
  const std::vector<float>& g = model_.gradients();
  double sums[2] = {0, 0};  // replicated, sharded
  for (const core::ParameterView& v : model_.layout().views()) {
    double s = 0;
    for (int64_t i = v.offset; i < v.offset + v.size; ++i) s += double(g[i]) * g[i];
    sums[v.shard.split() ? 1 : 0] += s;
  }
  if (grid_.tp_size() > 1) grid_.tp().all_reduce_sum(&sums[1], 1);
  return sums[0] + sums[1];
}

void Trainer::log(const StepMetrics& s) {
  history_.push_back(s);
  if (grid_.world_rank() != 0) return;
  std::ofstream jsonl(cfg_.output_dir + "/metrics.jsonl", std::ios::app);
  jsonl << nlohmann::json{{"step", s.step}, {"loss", s.loss}, {"nll", s.nll}, {"bits_per_dim", s.bits_per_dim},
                          {"latent_norm", s.latent_norm}, {"grad_norm", s.grad_norm}, {"lr", s.lr},
                          {"seconds", s.seconds}, {"img_per_s", s.images_per_second}, {"skipped", s.skipped},
                          {"allreduce_wait_s", s.comm_wait_seconds}}
               .dump()
        << "\n";
  if (live_progress() || s.step % cfg_.log_every == 0 || s.step == cfg_.steps) {
    double recent = 0;
    int count = 0;
    for (auto it = history_.rbegin(); it != history_.rend() && count < 20; ++it, ++count) recent += it->seconds;
    const double eta = count ? recent / count * double(cfg_.steps - s.step) : 0;
    std::printf("%sstep %6lld/%lld  loss %.4f  bits/dim %.4f  lr %.2e  %.1f img/s  ETA %.0fs%s%s",
                live_progress() ? "\r" : "", (long long)s.step, (long long)cfg_.steps, s.loss, s.bits_per_dim,
                s.lr, s.images_per_second, eta, s.skipped ? "  (skipped: non-finite)" : "",
                live_progress() ? "" : "\n");
    std::fflush(stdout);
  }
}

void Trainer::run(int64_t stop_at, const std::function<bool()>& should_stop) {
  const int64_t end = stop_at > 0 ? std::min(stop_at, cfg_.steps) : cfg_.steps;
  while (step_ < end) {
    const StepMetrics s = train_step();
    log(s);
    if (!s.skipped && cfg_.checkpoint_every > 0 && step_ % cfg_.checkpoint_every == 0 && step_ < end)
      write_checkpoint();
    if (preview_ && !s.skipped && step_ % cfg_.sample_every == 0)
      preview_->write(step_, ema_.empty() ? model_.parameters() : ema_, &grid_.tp());
    if (should_stop) {
      // Every rank must agree, or the collective checkpoint below would hang.
      double stop = should_stop() ? 1 : 0;
      grid_.world().all_reduce_max(&stop, 1);
      if (stop > 0) break;
    }
  }
  if (grid_.world_rank() == 0 && live_progress()) std::printf("\n");
  write_checkpoint();
  if (grid_.world_rank() == 0) write_loss_curve();
}

void Trainer::write_loss_curve() const {
  // From metrics.jsonl, which holds every step of the run across resumes.
  std::vector<CurvePoint> points;
  std::ifstream in(cfg_.output_dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    try {
      const nlohmann::json j = nlohmann::json::parse(line);
      if (!j.value("skipped", false)) points.push_back({j.at("step").get<double>(), j.at("loss").get<double>()});
    } catch (const std::exception&) {
      // a line cut by a crash: skip it
    }
  }
  write_loss_plot(cfg_.output_dir + "/loss.png", points, "training loss");
}

namespace {

// The slices of one state buffer this rank writes. `buffer` holds flat elements [lo, hi) (the whole flat
// buffer, or this rank's ZeRO-1 part) starting at flat element `base`. Each element of the checkpoint must
// come from exactly one rank: tensor-parallel shards from their TP rank, whole tensors from one TP rank;
// across DP either from the rank whose ZeRO-1 part holds it (dp_partitioned) or from one DP rank.
std::vector<CheckpointSlice> owned_slices(const core::ParameterView& v, const float* buffer, int64_t base, int64_t lo,
                                          int64_t hi, bool dp_partitioned, size_t index,
                                          parallel::ProcessGrid& grid) {
  std::vector<CheckpointSlice> out;
  const bool tp_writes = v.shard.split() || static_cast<int>(index % grid.tp_size()) == grid.tp_rank();
  const bool dp_writes = dp_partitioned || static_cast<int>(index % grid.dp_size()) == grid.dp_rank();
  if (!tp_writes || !dp_writes) return out;
  const int64_t a = std::max(lo, v.offset) - v.offset, b = std::min(hi, v.offset + v.size) - v.offset;
  core::for_each_global_run(v, a, b, [&](int64_t local, int64_t global, int64_t n) {
    out.push_back({global, global + n, buffer + (v.offset + local - base)});
  });
  return out;
}

}  // namespace

std::string Trainer::write_checkpoint() {
  const auto& views = model_.layout().views();
  const int64_t total = static_cast<int64_t>(model_.parameters().size());
  const core::AdamW<float>& adam = optimizer_.adam();
  const bool zero1 = optimizer_.zero1();
  std::vector<CheckpointTensor> tensors;
  for (size_t i = 0; i < views.size(); ++i) {
    const core::ParameterView& v = views[i];
    auto add = [&](const std::string& prefix, const float* buffer, int64_t base, int64_t lo, int64_t hi,
                   bool partitioned) {
      CheckpointTensor t;
      t.name = prefix + v.name;
      t.shape = v.global_shape;
      t.slices = owned_slices(v, buffer, base, lo, hi, partitioned, i, grid_);
      tensors.push_back(std::move(t));
    };
    add("model.", model_.parameters().data(), 0, 0, total, false);
    add("adam_m.", adam.first_moment().data(), adam.base(), optimizer_.begin(), optimizer_.end(), zero1);
    add("adam_v.", adam.second_moment().data(), adam.base(), optimizer_.begin(), optimizer_.end(), zero1);
    if (!ema_.empty()) add("ema.", ema_.data(), 0, 0, total, false);
  }
  const nlohmann::json meta = {{"model_config", nlohmann::json::parse(cfg_.model.to_official_json())},
                               {"train_config", cfg_.source_text},
                               {"step", step_},
                               {"adam_steps", adam.steps()},
                               {"data_cursor", data_.cursor()},
                               {"bad_steps_in_row", bad_in_row_},
                               {"skipped_steps", skipped_total_},
                               {"seed", cfg_.seed},
                               {"dp_size", grid_.dp_size()},
                               {"tp_size", grid_.tp_size()},
                               {"zero1", zero1}};
  return jobs::write_checkpoint(grid_.world().comm(), checkpoint_dir_, step_, meta, tensors,
                                static_cast<int>(cfg_.keep_checkpoints));
}

void Trainer::load_initial_weights(const std::string& path) {
  const core::io::SafeTensorsFile file = core::io::SafeTensorsFile::open(path);
  const nlohmann::json theirs = nlohmann::json::parse(core::io::read_config(file).to_official_json());
  const nlohmann::json ours = nlohmann::json::parse(cfg_.model.to_official_json());
  if (theirs != ours)
    throw std::runtime_error(path + ": the weights are for another model config (" +
                             config_difference(theirs, ours, "file") + ")");
  core::io::load_weights(model_, file);
  if (!ema_.empty()) ema_ = model_.parameters();
}

std::string Trainer::resume_if_possible() {
  std::string path;
  if (grid_.world_rank() == 0) path = newest_checkpoint_file(checkpoint_dir_);  // damaged: an error, not a step back
  int64_t len = static_cast<int64_t>(path.size());
  grid_.world().broadcast(&len, sizeof len, 0);
  path.resize(len);
  grid_.world().broadcast(path.data(), len, 0);
  if (path.empty()) return "";
  CheckpointReader reader(grid_.world().comm(), path);
  const nlohmann::json& meta = reader.info().header.at("meta");
  const nlohmann::json ours = nlohmann::json::parse(cfg_.model.to_official_json());
  if (meta.at("model_config") != ours)
    throw std::runtime_error(path + ": the checkpoint is for another model config (" +
                             config_difference(meta.at("model_config"), ours) + ")");
  // Each rank reads what it holds: whole tensors where it holds them whole (their checksums verified on
  // the way), and only its runs of a TP shard or a ZeRO-1 part. Any layout loads any checkpoint, and the
  // world reads about one file plus each rank's share, not one file per rank.
  core::AdamW<float>& adam = optimizer_.adam();
  std::set<std::string> verified;  // read whole here, so checked against their CRC-32
  auto load = [&](const std::string& name, const core::ParameterView& v, float* buffer, int64_t base, int64_t lo,
                  int64_t hi) {
    const int64_t a = std::max(lo, v.offset), b = std::min(hi, v.offset + v.size);
    if (a >= b) return;
    if (!v.shard.split() && a == v.offset && b == v.offset + v.size) {
      reader.read(name, buffer + (a - base));
      verified.insert(name);
      return;
    }
    core::for_each_global_run(v, a - v.offset, b - v.offset, [&](int64_t l, int64_t g, int64_t n) {
      reader.read(name, buffer + (v.offset + l - base), g, g + n);
    });
  };
  const int64_t total = static_cast<int64_t>(model_.parameters().size());
  std::vector<std::string> names;
  // A read failing on one rank (truncation, a bad run) must not leave the others waiting: every error is
  // collected and agreed on below.
  std::string error;
  try {
    for (const core::ParameterView& v : model_.layout().views()) {
      if (reader.shape("model." + v.name) != v.global_shape)
        throw std::runtime_error(path + ": tensor 'model." + v.name + "' has shape " +
                                 core::shape_string(reader.shape("model." + v.name)) + ", expected " +
                                 core::shape_string(v.global_shape));
      load("model." + v.name, v, model_.parameters().data(), 0, 0, total);
      load("adam_m." + v.name, v, adam.first_moment().data(), adam.base(), optimizer_.begin(), optimizer_.end());
      load("adam_v." + v.name, v, adam.second_moment().data(), adam.base(), optimizer_.begin(), optimizer_.end());
      names.insert(names.end(), {"model." + v.name, "adam_m." + v.name, "adam_v." + v.name});
      if (!ema_.empty()) {
        if (reader.has("ema." + v.name)) {
          load("ema." + v.name, v, ema_.data(), 0, 0, total);
          names.push_back("ema." + v.name);
        } else {
          std::copy_n(model_.parameters().data() + v.offset, v.size, ema_.data() + v.offset);
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
  step_ = meta.at("step").get<int64_t>();
  adam.set_steps(meta.at("adam_steps").get<int64_t>());
  bad_in_row_ = meta.at("bad_steps_in_row").get<int64_t>();
  skipped_total_ = meta.at("skipped_steps").get<int64_t>();
  data_.restore(meta.at("data_cursor"));
  return path;
}

}  // namespace starflow::jobs
