// run_demo: each stage is the real job in a child process (preprocess and train under mpirun, convert), then a
// guided grid and an evaluation in this process. The two datasets share every stage; a DemoDataset holds only
// what differs between them: their shards, their conditioning, the grid's rows and the evaluation.
#include "jobs/demo_job.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/io/files.h"
#include "core/io/model_weights.h"
#include "core/models/model_presets.h"
#include "core/models/sampler.h"
#include "core/random.h"
#include "data/io/emoji_dataset.h"
#include "data/io/png_io.h"
#include "data/shard_dataset.h"
#include "jobs/checkpoint.h"
#include "jobs/preprocess_job.h"
#include "jobs/sample_job.h"
#include "jobs/train_config.h"

namespace starflow::jobs {
namespace {

namespace fs = std::filesystem;
constexpr double kHalfLog2Pi = 0.91893853320467274178;
constexpr double kNoiseStd = 0.2;  // the σ of the training noise, of the denoising step and of the evaluation

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs one stage's command: prints it, runs it, throws on failure.
void run_stage(const std::string& command) {
  std::printf("[demo]     %s\n", command.c_str());
  std::fflush(stdout);
  if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
}

void say(const char* format, auto... args) {
  std::printf(format, args...);
  std::fflush(stdout);
}

// The trained model and what the grid and the evaluation need of the run.
struct TrainedRun {
  const DemoOptions& options;
  core::FlowConfig config;
  core::StarFlowModel<float>& model;
};

// The grid: rows × columns samples, their conditions and the grid's own notes for the summary.
struct GridConditions {
  int64_t rows = 0, columns = 0;
  Conditioning conditioning;
  nlohmann::json summary = nlohmann::json::object();
};

class DemoDataset {
 public:
  virtual ~DemoDataset() = default;
  // Defaults of the options this dataset leaves open, and the options it refuses.
  virtual void resolve(DemoOptions& o) const = 0;
  // Writes the latent shards (resumable) and returns the training shard directory.
  virtual std::string preprocess(const DemoOptions& o, const std::string& mpirun) const = 0;
  // The model's conditioning (txt_size, txt_dim) and the dataset's part of the training config.
  virtual void configure(TrainConfig& c, const DemoOptions& o) const = 0;
  virtual std::string autoencoder() const = 0;
  virtual GridConditions grid(const core::FlowConfig& cfg, const DemoOptions& o) const = 0;
  // Scores the run; `raw` are the grid's samples before denoising. Returns the summary's entries.
  virtual nlohmann::json evaluate(const TrainedRun& run, const GridConditions& grid, std::span<const float> raw) const = 0;
  // The last line: what the run achieved.
  virtual void report(const nlohmann::json& summary) const = 0;
};

// Fashion-MNIST: class-conditional (one one-hot token of 10 classes + the null class), a 10 × 10 grid with row k =
// class k, evaluated on held-out images by NLL (bits/dim) and by the Bayes classifier argmin_k NLL(x | k).
class FashionMnistDemo final : public DemoDataset {
  static constexpr int64_t kClasses = 10;

 public:
  void resolve(DemoOptions& o) const override {
    if (!o.captions.empty()) throw std::runtime_error("--caption is for --dataset emoji (fashion-mnist rows are its classes)");
    if (o.limit > 0) throw std::runtime_error("--limit is for --dataset emoji");
    if (o.out_dir.empty()) o.out_dir = "out/demo";
    if (o.steps <= 0) o.steps = 900;
    if (o.cfg < 0) o.cfg = 2.0;
  }
  std::string preprocess(const DemoOptions& o, const std::string& mpirun) const override {
    say("[demo] 1/4 preprocessing Fashion-MNIST with %s\n", fs::path(autoencoder()).filename().c_str());
    run_stage(mpirun + "preprocess --dataset fashion-mnist --shard-size 6000 --out '" + o.out_dir + "/shards/train'");
    run_stage(mpirun + "preprocess --dataset fashion-mnist --split test --limit " + std::to_string(o.eval_samples) +
              " --shard-size 500 --out '" + test_shards(o) + "'");
    return o.out_dir + "/shards/train";
  }
  void configure(TrainConfig& c, const DemoOptions& o) const override {
    c.model.txt_size = 1;
    c.model.txt_dim = kClasses + 1;
    c.checkpoint_every = 300;
    c.sample_every = std::max<int64_t>(1, o.steps / 3);
  }
  std::string autoencoder() const override { return default_autoencoder("fashion-mnist"); }
  GridConditions grid(const core::FlowConfig& cfg, const DemoOptions& o) const override {
    GridConditions g;
    g.rows = g.columns = kClasses;
    std::vector<int64_t> labels(g.rows * g.columns);
    for (size_t b = 0; b < labels.size(); ++b) labels[b] = static_cast<int64_t>(b) / g.columns;
    g.conditioning = class_conditioning(cfg, labels);
    return g;
  }
  nlohmann::json evaluate(const TrainedRun& run, const GridConditions&, std::span<const float>) const override {
    const DemoOptions& o = run.options;
    say("[demo] 4/4 evaluating on %lld held-out images\n", (long long)o.eval_samples);
    data::ShardDatasetOptions options;
    options.batch_per_rank = 1;
    data::ShardDataset test(data::find_shards(test_shards(o)), options);
    const int64_t N = test.num_samples(), E = run.config.txt_dim;
    const int64_t n = run.config.in_channels * run.config.img_size * run.config.img_size;
    std::vector<int64_t> all(N);
    for (int64_t i = 0; i < N; ++i) all[i] = i;
    const data::SampleBatch t = test.read_samples(all);
    std::vector<float> x = t.latents.data;
    core::Rng eval_rng(o.seed + 99);
    for (float& v : x) v += float(kNoiseStd * eval_rng.normal());
    double nll_true = 0;
    int64_t correct = 0;
    for (int64_t start = 0, chunk = 100; start < N; start += chunk) {
      const int64_t b = std::min(chunk, N - start);
      std::vector<double> best(b, INFINITY);
      std::vector<int64_t> arg(b, -1);
      for (int64_t k = 0; k < kClasses; ++k) {
        std::vector<float> yk(b * E, 0.f);
        for (int64_t i = 0; i < b; ++i) yk[i * E + k] = 1.f;
        run.model.forward(x.data() + start * n, yk.data(), b, 0.0);
        const std::vector<double> nll = run.model.per_sample_nll();
        for (int64_t i = 0; i < b; ++i) {
          if (nll[i] < best[i]) best[i] = nll[i], arg[i] = k;
          if (t.labels[start + i] == k) nll_true += nll[i];
        }
      }
      for (int64_t i = 0; i < b; ++i) correct += arg[i] == t.labels[start + i];
    }
    const double nll = nll_true / N;
    return {{"heldout_images", N},
            {"heldout_nll_nats_per_dim", nll + kHalfLog2Pi},
            {"heldout_bits_per_dim", (nll + kHalfLog2Pi) / std::log(2.0)},
            {"bayes_classifier_accuracy", double(correct) / N}};
  }
  void report(const nlohmann::json& s) const override {
    say("[demo] done in %.0f s: held-out %.4f bits/dim (latents + N(0, %.1f²) noise), Bayes classifier accuracy "
        "%.1f%% over %lld images\n[demo] samples: %s   summary: %s/summary.json\n",
        s["seconds"].get<double>(), s["heldout_bits_per_dim"].get<double>(), kNoiseStd,
        100 * s["bayes_classifier_accuracy"].get<double>(), (long long)s["heldout_images"].get<int64_t>(),
        s["samples_png"].get<std::string>().c_str(), fs::path(s["samples_png"].get<std::string>()).parent_path().c_str());
  }

 private:
  static std::string test_shards(const DemoOptions& o) { return o.out_dir + "/shards/test"; }
};

// The captioned emoji set: text-conditional (16 word vectors of 100 dims per caption), a grid with one row per
// caption, evaluated by caption agreement: the share of samples whose own caption gives them the lowest NLL
// among the grid's captions (chance is 1 / captions).
class EmojiDemo final : public DemoDataset {
  static constexpr int64_t kTextLength = 16;  // tokens per caption (emoji names are 1-8 words)
  static constexpr int64_t kColumns = 8;      // samples per caption in the grid

 public:
  void resolve(DemoOptions& o) const override {
    if (o.out_dir.empty()) o.out_dir = "out/demo-emoji";
    if (o.steps <= 0) o.steps = 1500;
    if (o.cfg < 0) o.cfg = 3.0;
    if (o.captions.empty()) o.captions = kDefaultEmojiCaptions;
  }
  std::string preprocess(const DemoOptions& o, const std::string& mpirun) const override {
    if (!data::emoji_dataset_present(data::emoji_dataset_paths())) {
      say("[demo] 0/4 fetching the emoji set and word vectors (tools/fetch-emoji.sh)\n");
      run_stage("bash '" + (fs::path(STARFLOW_SOURCE_DIR) / "tools" / "fetch-emoji.sh").string() + "'");
    }
    say("[demo] 1/4 preprocessing the emoji set with %s and the word-vector text encoder\n",
        fs::path(autoencoder()).filename().c_str());
    const std::string shards = o.out_dir + "/shards";
    run_stage(mpirun + "preprocess --dataset emoji --text-length " + std::to_string(kTextLength) + " --shard-size 1000" +
              (o.limit > 0 ? " --limit " + std::to_string(o.limit) : "") + " --out '" + shards + "'");
    return shards;
  }
  void configure(TrainConfig& c, const DemoOptions& o) const override {
    c.model.txt_size = kTextLength;
    c.model.txt_dim = 100;
    c.checkpoint_every = std::max<int64_t>(1, o.steps / 4);
    c.sample_every = std::max<int64_t>(1, o.steps / 2);
    c.preview_captions = o.captions;
  }
  std::string autoencoder() const override { return default_autoencoder("emoji"); }
  GridConditions grid(const core::FlowConfig& cfg, const DemoOptions& o) const override {
    GridConditions g;
    g.rows = static_cast<int64_t>(o.captions.size());
    g.columns = kColumns;
    core::WordVectorTextEncoder encoder = word_vector_encoder_for(cfg);
    g.summary["rows"] = nlohmann::json::array();
    for (int64_t k = 0; k < g.rows; ++k) {
      core::TextEncodeStats stats;
      encoder.encode(std::span<const std::string>(&o.captions[k], 1), &stats);
      const int64_t known = stats.tokens - stats.unknown_tokens;
      if (known == 0)
        say("[demo]     caption '%s': no word the vectors know; its row samples the null caption\n", o.captions[k].c_str());
      g.summary["rows"].push_back({{"row", k}, {"caption", o.captions[k]}, {"known_words", known}});
    }
    std::vector<std::string> per_sample(g.rows * g.columns);
    for (size_t b = 0; b < per_sample.size(); ++b) per_sample[b] = o.captions[b / kColumns];
    g.conditioning = caption_conditioning(cfg, encoder, per_sample);
    return g;
  }
  nlohmann::json evaluate(const TrainedRun& run, const GridConditions& g, std::span<const float> raw) const override {
    say("[demo] 4/4 scoring the samples under each caption\n");
    const int64_t B = g.rows * g.columns;
    core::WordVectorTextEncoder encoder = word_vector_encoder_for(run.config);
    std::vector<double> best(B, INFINITY);
    std::vector<int64_t> arg(B, -1);
    for (int64_t k = 0; k < g.rows; ++k) {
      const std::vector<std::string> same(B, run.options.captions[k]);
      const Conditioning yk = caption_conditioning(run.config, encoder, same);
      run.model.forward(raw.data(), yk.y.data(), B, 0.0);
      const std::vector<double> nll = run.model.per_sample_nll();
      for (int64_t b = 0; b < B; ++b)
        if (nll[b] < best[b]) best[b] = nll[b], arg[b] = k;
    }
    int64_t agree = 0;
    for (int64_t b = 0; b < B; ++b) agree += arg[b] == b / g.columns;
    double final_loss = NAN, final_bpd = NAN;
    std::ifstream metrics(run.options.out_dir + "/train/metrics.jsonl");
    for (std::string line; std::getline(metrics, line);) {
      try {
        const nlohmann::json j = nlohmann::json::parse(line);
        if (!j.value("skipped", false)) final_loss = j.at("loss"), final_bpd = j.at("bits_per_dim");
      } catch (const std::exception&) {
        // a line cut by a crash
      }
    }
    return {{"caption_agreement", double(agree) / B},
            {"caption_agreement_chance", 1.0 / g.rows},
            {"final_train_loss", final_loss},
            {"final_train_bits_per_dim", final_bpd}};
  }
  void report(const nlohmann::json& s) const override {
    say("[demo] done in %.0f s: %lld steps on %lld images, final training %.4f bits/dim; caption agreement %.0f%% "
        "(chance %.0f%%)\n[demo] samples (row k = caption k): %s   summary: %s/summary.json\n",
        s["seconds"].get<double>(), (long long)s["train_steps"].get<int64_t>(), (long long)s["images"].get<int64_t>(),
        s["final_train_bits_per_dim"].get<double>(), 100 * s["caption_agreement"].get<double>(),
        100 * s["caption_agreement_chance"].get<double>(), s["samples_png"].get<std::string>().c_str(),
        fs::path(s["samples_png"].get<std::string>()).parent_path().c_str());
  }
};

std::unique_ptr<DemoDataset> demo_dataset(const std::string& name) {
  if (name == "fashion-mnist") return std::make_unique<FashionMnistDemo>();
  if (name == "emoji") return std::make_unique<EmojiDemo>();
  throw std::runtime_error("--dataset " + name + ": unknown (fashion-mnist, emoji)");
}

// The training run: the demo preset's model with the dataset's conditioning and a short, warm recipe.
TrainConfig training_config(const DemoDataset& dataset, const DemoOptions& o, const std::string& shards) {
  const core::ModelPreset& preset = core::model_preset("demo");
  TrainConfig c;
  c.model = preset.model;
  c.batch_size = preset.batch;
  c.noise_std = kNoiseStd;
  c.lr = 0.002;
  c.min_lr = 0.00002;
  c.warmup_steps = std::min<int64_t>(100, o.steps / 5);
  c.steps = o.steps;
  c.drop_label = 0.1;
  c.latent_norm_regularization = 0.0001;
  c.grad_clip = 1.0;
  c.data = shards;
  c.seed = o.seed;
  c.output_dir = o.out_dir + "/train";
  c.keep_checkpoints = 2;
  c.log_every = 50;
  c.cfg = o.cfg;
  c.autoencoder = dataset.autoencoder();
  dataset.configure(c, o);  // the conditioning, checkpoint and preview cadence
  c.validate("the demo's training config");
  return c;
}

// mpirun for `ranks` ranks of this binary, one OpenMP thread each (two ranks on two cores must not
// oversubscribe); --allow-run-as-root only when we are root, as Open MPI asks.
std::string mpirun_prefix(const DemoOptions& o) {
  return std::string("mpirun ") + (::geteuid() == 0 ? "--allow-run-as-root " : "") +
         "--oversubscribe -x OMP_NUM_THREADS=1 -np " + std::to_string(o.ranks) + " '" + o.binary + "' ";
}

}  // namespace

int run_demo(const DemoOptions& options) {
  const std::unique_ptr<DemoDataset> dataset = demo_dataset(options.dataset);
  DemoOptions o = options;
  dataset->resolve(o);
  const auto t0 = std::chrono::steady_clock::now();
  fs::create_directories(o.out_dir);
  const std::string mpirun = mpirun_prefix(o);

  // 1. Latent shards on `ranks` MPI ranks (a rerun skips the complete ones). This process never initialises MPI.
  const std::string shards = dataset->preprocess(o, mpirun);
  int64_t images = 0;
  for (const std::string& path : data::find_shards(shards)) images += data::read_shard_header(path).num_samples;

  // 2. Training on `ranks` MPI ranks, from a config file left beside the results.
  const std::string yaml = o.out_dir + "/train.yaml";
  core::io::write_file_atomically(yaml, "# written by starflow demo --dataset " + o.dataset + "\n" +
                                            training_config(*dataset, o, shards).to_yaml());
  say("[demo] 2/4 training on %lld images\n", (long long)images);
  run_stage(mpirun + "train '" + yaml + "'");

  // 3. The trained weights and a guided grid, decoded by the autoencoder.
  const std::string weights = o.out_dir + "/weights.safetensors";
  run_stage("'" + o.binary + "' convert --from '" + newest_checkpoint(o.out_dir + "/train/checkpoints") + "' --to '" +
            weights + "'");
  const core::io::SafeTensorsFile weights_file = core::io::SafeTensorsFile::open(weights);
  const core::FlowConfig cfg = core::io::read_config(weights_file);
  core::StarFlowModel<float> model(cfg);
  core::io::load_weights(model, weights_file);
  const GridConditions grid = dataset->grid(cfg, o);
  const int64_t B = grid.rows * grid.columns;
  say("[demo] 3/4 sampling a %lldx%lld grid with guidance w = %.1f\n", (long long)grid.rows, (long long)grid.columns, o.cfg);
  std::vector<float> noise(B * cfg.in_channels * cfg.img_size * cfg.img_size);
  core::Rng rng(o.seed + 17);
  for (float& v : noise) v = float(rng.normal());
  core::SampleOptions so;
  so.guidance = o.cfg;
  const std::vector<float> raw =
      core::sample(model, noise.data(), grid.conditioning.y.data(), grid.conditioning.y_null.data(), B, so);
  const std::vector<float> latents = core::denoise(model, raw.data(), grid.conditioning.y.data(), B, kNoiseStd);
  const std::unique_ptr<core::LatentCodec> ae = load_autoencoder_for(cfg, dataset->autoencoder());
  const std::string grid_png = o.out_dir + "/samples.png";
  const int64_t non_finite = data::write_image_grid(grid_png, decode_latents(*ae, latents, B),
                                                    {B, ae->image_channels(), ae->image_size(), ae->image_size()},
                                                    grid.rows, grid.columns);

  // 4. The dataset's evaluation, and the summary.
  nlohmann::json summary = {{"dataset", o.dataset},
                            {"images", images},
                            {"guidance", o.cfg},
                            {"non_finite_pixels", non_finite},
                            {"noise_std", kNoiseStd},
                            {"parameters", model.layout().parameter_count()},
                            {"train_steps", std::stoll(weights_file.metadata_value("step"))},
                            {"ranks", o.ranks},
                            {"samples_png", grid_png},
                            {"previews", o.out_dir + "/train/samples"},
                            {"metrics", o.out_dir + "/train/metrics.jsonl"},
                            {"loss_curve_png", o.out_dir + "/train/loss.png"}};
  summary.update(grid.summary);
  summary.update(dataset->evaluate(TrainedRun{o, cfg, model}, grid, raw));
  summary["seconds"] = seconds_since(t0);
  core::io::write_file_atomically(o.out_dir + "/summary.json", summary.dump(2) + "\n");
  dataset->report(summary);
  return 0;
}

}  // namespace starflow::jobs
