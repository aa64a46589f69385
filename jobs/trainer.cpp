// The trainer's backend-independent pieces (keys, logging, checkpoint slices, layout checks) and the CPU
// instantiation of BasicTrainer (jobs/trainer_impl.h).
#include <unistd.h>

#include <cstdlib>

#include "jobs/loss_plot.h"
#include "jobs/trainer_impl.h"

namespace starflow::jobs {
namespace trainer_detail {

uint64_t step_key(uint64_t seed, int64_t position, int rank) {
  core::Rng r(seed ^ (0xD1B54A32D192ED03ull * static_cast<uint64_t>(position + 1)) ^
              (0x8CB92BA72F3D8DD7ull * static_cast<uint64_t>(rank + 1)));
  return r.next_u64();
}

uint64_t posterior_key(uint64_t seed, int64_t place) {
  core::Rng r(seed ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(place + 1)) ^ 0x5851F42D4C957F2Dull);
  return r.next_u64();
}

// Open MPI hands its ranks a pseudo-terminal even when mpirun's own output goes to a file, so under mpirun we
// print log lines.
bool live_progress() {
  static const bool live = isatty(STDOUT_FILENO) && !std::getenv("OMPI_COMM_WORLD_SIZE");
  return live;
}

std::string config_difference(const nlohmann::json& checkpoint, const nlohmann::json& config, const std::string& where) {
  std::string out;
  for (const auto& [key, value] : config.items()) {
    const nlohmann::json theirs = checkpoint.contains(key) ? checkpoint.at(key) : nlohmann::json();
    if (theirs != value)
      out += (out.empty() ? "" : "; ") + key + " " + theirs.dump() + " in the " + where + ", " + value.dump() + " in the config";
  }
  return out.empty() ? "different keys" : out;
}

CheckpointOwners checkpoint_owners(const std::vector<core::ParameterView>& views, int tp_size, int dp_size) {
  CheckpointOwners owners;
  owners.tp.assign(views.size(), 0);
  owners.dp.assign(views.size(), 0);
  std::vector<size_t> order(views.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return views[a].size > views[b].size; });
  std::vector<int64_t> load(static_cast<size_t>(tp_size) * dp_size, 0);  // elements per (tp, dp) rank
  const auto at = [&](int t, int d) -> int64_t& { return load[static_cast<size_t>(d) * tp_size + t]; };
  for (size_t i : order) {
    const core::ParameterView& v = views[i];
    if (v.shard.split()) {  // every TP rank writes its shard: the DP rank whose TP ranks are least loaded
      int best = 0;
      int64_t best_load = -1;
      for (int d = 0; d < dp_size; ++d) {
        int64_t sum = 0;
        for (int t = 0; t < tp_size; ++t) sum += at(t, d);
        if (best_load < 0 || sum < best_load) best = d, best_load = sum;
      }
      owners.dp[i] = best;
      for (int t = 0; t < tp_size; ++t) at(t, best) += v.size;
    } else {
      size_t best = 0;
      for (size_t r = 1; r < load.size(); ++r)
        if (load[r] < load[best]) best = r;
      owners.tp[i] = static_cast<int>(best % tp_size);
      owners.dp[i] = static_cast<int>(best / tp_size);
      load[best] += v.size;
    }
  }
  return owners;
}

std::vector<CheckpointSlice> owned_slices(const core::ParameterView& v, const float* buffer, int64_t base, int64_t lo,
                                          int64_t hi, bool dp_partitioned, size_t index, const CheckpointOwners& owners,
                                          parallel::ProcessGrid& grid) {
  std::vector<CheckpointSlice> out;
  const bool tp_writes = v.shard.split() || owners.tp[index] == grid.tp_rank();
  const bool dp_writes = dp_partitioned || owners.dp[index] == grid.dp_rank();
  if (!tp_writes || !dp_writes) return out;
  const int64_t a = std::max(lo, v.offset) - v.offset, b = std::min(hi, v.offset + v.size) - v.offset;
  core::for_each_global_run(v, a, b, [&](int64_t local, int64_t global, int64_t n) {
    out.push_back({global, global + n, buffer + (v.offset + local - base)});
  });
  return out;
}

void append_metrics(const TrainConfig& cfg, const StepMetrics& s, const std::vector<StepMetrics>& history) {
  std::ofstream jsonl(cfg.output_dir + "/metrics.jsonl", std::ios::app);
  nlohmann::json line = {{"step", s.step}, {"loss", s.loss}, {"nll", s.nll}, {"bits_per_dim", s.bits_per_dim},
                          {"latent_norm", s.latent_norm}, {"grad_norm", s.grad_norm}, {"lr", s.lr},
                          {"seconds", s.seconds}, {"img_per_s", s.images_per_second}, {"skipped", s.skipped},
                          {"allreduce_wait_s", s.comm_wait_seconds}};
  if (s.denoiser_loss >= 0) line["denoiser_loss"] = s.denoiser_loss;
  jsonl << line.dump() << "\n";
  if (live_progress() || s.step % cfg.log_every == 0 || s.step == cfg.steps) {
    double recent = 0;
    int count = 0;
    for (auto it = history.rbegin(); it != history.rend() && count < 20; ++it, ++count) recent += it->seconds;
    const double eta = count ? recent / count * double(cfg.steps - s.step) : 0;
    std::printf("%sstep %6lld/%lld  loss %.4f  bits/dim %.4f  lr %.2e  %.1f img/s  ETA %.0fs%s%s",
                live_progress() ? "\r" : "", (long long)s.step, (long long)cfg.steps, s.loss, s.bits_per_dim, s.lr,
                s.images_per_second, eta, s.skipped ? "  (skipped: non-finite)" : "", live_progress() ? "" : "\n");
    std::fflush(stdout);
  }
}

void write_loss_curve(const TrainConfig& cfg) {
  // From metrics.jsonl, which holds every step of the run across resumes. With held-out evaluations the curve
  // is the training bits/dim, in the held-out figures' units; without, the training loss.
  LossPlot plot;
  std::vector<CurvePoint> loss, bits;
  std::ifstream in(cfg.output_dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    try {
      const nlohmann::json j = nlohmann::json::parse(line);
      const double step = j.at("step").get<double>();
      if (j.contains("eval_bits_per_dim")) {
        plot.heldout.push_back({step, j.at("eval_bits_per_dim").get<double>()});
      } else if (!j.value("skipped", false)) {
        loss.push_back({step, j.at("loss").get<double>()});
        bits.push_back({step, j.at("bits_per_dim").get<double>()});
      }
    } catch (const std::exception&) {
      // a line cut by a crash: skip it
    }
  }
  plot.curve = plot.heldout.empty() ? std::move(loss) : std::move(bits);
  plot.y_title = plot.heldout.empty() ? "loss" : "bits per dim";
  write_loss_plot(cfg.output_dir + "/loss.png", plot);
}

void check_batch_layout(const TrainConfig& cfg, const parallel::ProcessGrid& grid, const BatchSource& data) {
  if (grid.tp_size() != cfg.tp)
    throw std::runtime_error("the config says tp " + std::to_string(cfg.tp) + " but the process grid has TP " +
                             std::to_string(grid.tp_size()));
  if (cfg.batch_size % grid.dp_size() != 0)
    throw std::runtime_error("batch_size " + std::to_string(cfg.batch_size) + " is not divisible by the " +
                             std::to_string(grid.dp_size()) + " data-parallel ranks");
  if (cfg.model.conditional() && cfg.model.txt_size == 1 && data.num_classes() + 1 != cfg.model.txt_dim)
    throw std::runtime_error("the data has " + std::to_string(data.num_classes()) + " classes, so txt_dim must be " +
                             std::to_string(data.num_classes() + 1) + " (classes + the null class), not " +
                             std::to_string(cfg.model.txt_dim));
}

}  // namespace trainer_detail

template class BasicTrainer<core::CpuBackend<float>>;

}  // namespace starflow::jobs
