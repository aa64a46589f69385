// run_demo (Fashion-MNIST): each stage is the real job (preprocess, `mpirun starflow train`, sample, evaluation).
#include "jobs/demo_job.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/io/autoencoder_weights.h"
#include "core/io/model_weights.h"
#include "core/models/sampler.h"
#include "core/random.h"
#include "data/io/png_io.h"
#include "data/shard_dataset.h"
#include "jobs/checkpoint.h"
#include "jobs/preprocess_job.h"
#include "jobs/sample_job.h"

namespace starflow::jobs {
namespace {

namespace fs = std::filesystem;
constexpr double kHalfLog2Pi = 0.91893853320467274178;
constexpr double kNoiseStd = 0.2;
constexpr int64_t kClasses = 10;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string train_yaml(const DemoOptions& o, const std::string& shards) {
  // ≈2.0M parameters: width 128, two shallow blocks of 2 layers and a deep block of 6.
  return "# written by starflow demo\n"
         "channel_size: 4\nimg_size: 8\npatch_size: 1\nchannels: 128\nhead_dim: 32\n"
         "blocks: 3\nlayers_per_block: [2, 2, 6]\nseq_order: L2R\ntxt_size: 1\ntxt_dim: 11\ncond_top_only: 1\n"
         "soft_clip: 4\nnoise_std: " + std::to_string(kNoiseStd) + "\n"
         "lr: 0.002\nmin_lr: 0.00002\nwarmup_steps: 100\nsteps: " + std::to_string(o.steps) + "\n"
         "batch_size: 64\ndrop_label: 0.1\nlatent_norm_regularization: 0.0001\ngrad_clip: 1.0\n"
         "data: " + shards + "\nseed: " + std::to_string(o.seed) + "\noutput_dir: " + o.out_dir + "/train\n"
         "checkpoint_every: 300\nkeep_checkpoints: 2\nlog_every: 50\n"
         // A preview grid (one row per class) every third of the run: the samples/ folder shows it learning.
         "sample_every: " + std::to_string(std::max<int64_t>(1, o.steps / 3)) + "\ncfg: " + std::to_string(o.cfg) +
         "\nautoencoder: " + default_autoencoder("fashion-mnist") + "\n";
}

}  // namespace

std::string demo_mpirun(const DemoOptions& o) {
  return "mpirun --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS=1 -np " + std::to_string(o.ranks) + " '" +
         o.binary + "' ";
}

void run_demo_stage(const std::string& cmd) {
  std::printf("[demo]     %s\n", cmd.c_str());
  std::fflush(stdout);
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
}

int run_demo(const DemoOptions& options) {
  DemoOptions o = options;
  if (o.dataset == "emoji") return run_emoji_demo(o);
  if (o.dataset != "fashion-mnist") throw std::runtime_error("--dataset " + o.dataset + ": unknown (fashion-mnist, emoji)");
  if (!o.captions.empty()) throw std::runtime_error("--caption is for --dataset emoji (fashion-mnist rows are its classes)");
  if (o.limit > 0) throw std::runtime_error("--limit is for --dataset emoji");
  if (o.out_dir.empty()) o.out_dir = "out/demo";
  if (o.steps <= 0) o.steps = 900;
  if (o.cfg < 0) o.cfg = 2.0;
  const auto t0 = std::chrono::steady_clock::now();
  fs::create_directories(o.out_dir);
  const std::string shards_train = o.out_dir + "/shards/train", shards_test = o.out_dir + "/shards/test";
  const std::string ae_path = default_autoencoder("fashion-mnist");

  // 1. Latent shards on `ranks` MPI ranks (resumable: a rerun skips shards that are complete). Every stage
  // is the real command in a child process, so this process never initialises MPI itself.
  const std::string mpirun = demo_mpirun(o);
  const auto run = run_demo_stage;
  std::printf("[demo] 1/4 preprocessing Fashion-MNIST with %s\n", fs::path(ae_path).filename().c_str());
  run(mpirun + "preprocess --dataset fashion-mnist --shard-size 6000 --out '" + shards_train + "'");
  run(mpirun + "preprocess --dataset fashion-mnist --split test --limit " + std::to_string(o.eval_samples) +
      " --shard-size 500 --out '" + shards_test + "'");

  // 2. Training on `ranks` MPI ranks.
  const std::string yaml = o.out_dir + "/train.yaml";
  std::ofstream(yaml) << train_yaml(o, shards_train);
  std::printf("[demo] 2/4 training\n");
  run(mpirun + "train '" + yaml + "'");

  // 3. The trained weights, a guided 10×10 grid (row k = class k), decoded by the autoencoder.
  const std::string weights = o.out_dir + "/weights.safetensors";
  run("'" + o.binary + "' convert --from '" + newest_checkpoint(o.out_dir + "/train/checkpoints") + "' --to '" +
      weights + "'");
  const core::io::SafeTensorsFile weights_file = core::io::SafeTensorsFile::open(weights);
  const core::FlowConfig cfg = core::io::read_config(weights_file);
  core::StarFlowModel<float> model(cfg);
  core::io::load_weights(model, weights_file);
  const int64_t train_steps = std::stoll(weights_file.metadata_value("step"));
  std::printf("[demo] 3/4 sampling a 10x10 grid with guidance w = %.1f\n", o.cfg);
  std::fflush(stdout);
  const int64_t B = 100, E = cfg.txt_dim, n = cfg.in_channels * cfg.img_size * cfg.img_size;
  std::vector<float> noise(B * n);
  core::Rng rng(o.seed + 17);
  for (float& v : noise) v = float(rng.normal());
  std::vector<int64_t> rows(B);
  for (int64_t b = 0; b < B; ++b) rows[b] = b / 10;
  const Conditioning cond = class_conditioning(cfg, rows);
  core::SampleOptions so;
  so.guidance = o.cfg;
  std::vector<float> latents = core::sample(model, noise.data(), cond.y.data(), cond.y_null.data(), B, so);
  latents = core::denoise(model, latents.data(), cond.y.data(), B, kNoiseStd);
  core::Autoencoder<float> ae = load_autoencoder_for(cfg, ae_path);
  const auto& ac = ae.config();
  const std::vector<float> images = decode_latents(ae, latents, B);
  const std::string grid = o.out_dir + "/samples.png";
  data::write_image_grid(grid, images, {B, ac.image_channels, ac.image_size, ac.image_size}, 10, 10);

  // 4. Held-out NLL (bits/dim of the σ-noised test latents) and the Bayes classifier.
  std::printf("[demo] 4/4 evaluating on %lld held-out images\n", (long long)o.eval_samples);
  std::fflush(stdout);
  data::ShardDatasetOptions dopt;
  dopt.batch_per_rank = 1;
  data::ShardDataset test(data::find_shards(shards_test), dopt);
  std::vector<int64_t> all(test.num_samples());
  for (int64_t i = 0; i < test.num_samples(); ++i) all[i] = i;
  const data::SampleBatch t = test.read_samples(all);
  const int64_t N = test.num_samples();
  std::vector<float> x = t.latents.data;
  core::Rng eval_rng(o.seed + 99);
  for (float& v : x) v += float(kNoiseStd * eval_rng.normal());
  double nll_true = 0;
  int64_t correct = 0;
  const int64_t chunk = 100;
  for (int64_t start = 0; start < N; start += chunk) {
    const int64_t b = std::min(chunk, N - start);
    std::vector<double> best(b, INFINITY);
    std::vector<int64_t> arg(b, -1);
    for (int64_t k = 0; k < kClasses; ++k) {
      std::vector<float> yk(b * E, 0.f);
      for (int64_t i = 0; i < b; ++i) yk[i * E + k] = 1.f;
      model.forward(x.data() + start * n, yk.data(), b, 0.0);
      const std::vector<double> nll = model.per_sample_nll();
      for (int64_t i = 0; i < b; ++i) {
        if (nll[i] < best[i]) best[i] = nll[i], arg[i] = k;
        if (t.labels[start + i] == k) nll_true += nll[i];
      }
    }
    for (int64_t i = 0; i < b; ++i) correct += arg[i] == t.labels[start + i];
  }
  const double nll = nll_true / N, bpd = (nll + kHalfLog2Pi) / std::log(2.0), accuracy = double(correct) / N;
  const nlohmann::json summary = {{"heldout_images", N},
                                  {"heldout_nll_nats_per_dim", nll + kHalfLog2Pi},
                                  {"heldout_bits_per_dim", bpd},
                                  {"bayes_classifier_accuracy", accuracy},
                                  {"noise_std", kNoiseStd},
                                  {"parameters", model.layout().parameter_count()},
                                  {"train_steps", train_steps},
                                  {"ranks", o.ranks},
                                  {"guidance", o.cfg},
                                  {"samples_png", grid},
                                  {"previews", o.out_dir + "/train/samples"},
                                  {"metrics", o.out_dir + "/train/metrics.jsonl"},
                                  {"loss_curve_png", o.out_dir + "/train/loss.png"},
                                  {"seconds", seconds_since(t0)}};
  std::ofstream(o.out_dir + "/summary.json") << summary.dump(2) << "\n";
  std::printf("[demo] done in %.0f s: held-out %.4f bits/dim (latents + N(0, %.1f²) noise), Bayes classifier "
              "accuracy %.1f%% over %lld images\n[demo] samples: %s   summary: %s/summary.json\n",
              seconds_since(t0), bpd, kNoiseStd, 100 * accuracy, (long long)N, grid.c_str(), o.out_dir.c_str());
  return 0;
}

}  // namespace starflow::jobs
