// run_sample_job: validation, conditioning rows, sampling, denoising, output.
#include "jobs/sample_job.h"

#include <chrono>
#include <cmath>
#include <stdexcept>

#include "core/io/autoencoder_weights.h"
#include "core/io/model_weights.h"
#include "data/io/png_io.h"
#include "data/latent_shard.h"
#include "core/models/sampler.h"
#include "core/random.h"

namespace starflow::jobs {
namespace {

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }

}  // namespace

SampleJobResult run_sample_job(const SampleJobOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.weights.empty()) fail("no weights given (--weights FILE.safetensors)");
  if (o.batch < 1) fail("--batch must be at least 1");
  if (o.cfg < 0) fail("--cfg must be >= 0 (got " + std::to_string(o.cfg) + ")");
  if (o.noise_std < 0) fail("--noise-std must be >= 0");
  if (o.jacobi && (o.jacobi_block_size < 1 || o.jacobi_max_iter < 1 || o.jacobi_threshold < 0))
    fail("Jacobi settings must be positive (block size, iterations) and a threshold >= 0");

  const core::io::SafeTensorsFile file = core::io::SafeTensorsFile::open(o.weights);
  const core::FlowConfig cfg = core::io::read_config(file);
  core::StarFlowModel<float> model(cfg);
  core::io::load_weights(model, file);

  // Conditioning: the one-hot class path (txt_size 1, txt_dim = classes + null) or text.
  const int64_t B = o.batch, L = cfg.txt_size, E = cfg.txt_dim;
  std::vector<float> y, y_null;
  if (!o.caption.empty())
    fail("--caption needs a text encoder, which this build does not have yet; class-conditional models take --class");
  if (!cfg.conditional()) {
    if (!o.classes.empty()) fail(o.weights + ": the model is unconditional: --class is not accepted");
    if (o.cfg > 0) fail(o.weights + ": the model is unconditional: guidance (--cfg) needs a conditional model");
  } else {
    if (L != 1) fail(o.weights + ": the model is text-conditioned (txt_size " + std::to_string(L) + "): give --caption");
    const int64_t classes = E - 1, null_class = E - 1;
    for (int64_t c : o.classes)
      if (c < 0 || c >= classes)
        fail("--class " + std::to_string(c) + " is out of range: the model has " + std::to_string(classes) +
             " classes (0.." + std::to_string(classes - 1) + ")");
    if (o.classes.empty() && o.cfg > 0) fail("guidance (--cfg) needs a condition: give --class");
    y.assign(B * E, 0.f);
    y_null.assign(B * E, 0.f);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t label = o.classes.empty() ? null_class : o.classes[b % o.classes.size()];
      y[b * E + label] = 1.f;
      y_null[b * E + null_class] = 1.f;
    }
  }

  const int64_t n = B * cfg.in_channels * cfg.img_size * cfg.img_size;
  std::vector<float> noise(n);
  core::Rng rng(o.seed);
  for (float& v : noise) v = float(rng.normal());
  core::SampleOptions so;
  so.guidance = o.cfg;
  so.jacobi = o.jacobi;
  so.jacobi_block_size = o.jacobi_block_size;
  so.jacobi_max_iter = o.jacobi_max_iter;
  so.jacobi_threshold = o.jacobi_threshold;
  const float* yp = cfg.conditional() ? y.data() : nullptr;
  SampleJobResult result;
  result.latents = core::sample(model, noise.data(), yp, o.cfg > 0 ? y_null.data() : nullptr, B, so);
  if (o.denoise) result.latents = core::denoise(model, result.latents.data(), yp, B, o.noise_std);
  result.shape = {B, cfg.in_channels, cfg.img_size, cfg.img_size};

  std::string classes;
  for (size_t i = 0; i < o.classes.size(); ++i) {
    if (i) classes += ',';
    classes += std::to_string(o.classes[i]);
  }
  if (o.output.size() > 3 && o.output.compare(o.output.size() - 3, 3, ".h5") == 0) {
    // A latent shard (data/FORMAT.md), so samples can feed anything that reads shards.
    data::ShardHeader h;
    h.autoencoder = o.autoencoder.empty() ? "none" : o.autoencoder;
    h.latent_shape = {cfg.in_channels, cfg.img_size, cfg.img_size};
    h.latent_type = data::StorageType::Float32;
    h.source = "starflow sample " + o.weights + " seed " + std::to_string(o.seed) + " cfg " + std::to_string(o.cfg);
    std::vector<int64_t> ids(B), labels(B);
    for (int64_t b = 0; b < B; ++b) ids[b] = b, labels[b] = o.classes.empty() ? 0 : o.classes[b % o.classes.size()];
    if (!o.classes.empty()) h.conditioning = data::Conditioning::ClassLabels, h.num_classes = cfg.txt_dim - 1;
    data::LatentShardWriter writer(o.output, h);
    data::SampleSpans spans;
    spans.count = B;
    spans.latents = result.latents;
    spans.sample_ids = ids;
    if (!o.classes.empty()) spans.labels = labels;
    writer.append(spans);
    writer.finish();
  } else if (!o.output.empty()) {
    core::io::write_safetensors(
        o.output, {{"samples", "F32", result.shape, result.latents.data(), result.latents.size() * sizeof(float)}},
        {{"format", "starflow-samples-v1"}, {"weights", o.weights}, {"config", cfg.to_official_json()},
         {"seed", std::to_string(o.seed)}, {"cfg", std::to_string(o.cfg)}, {"classes", classes},
         {"jacobi", o.jacobi ? "1" : "0"}, {"denoise", o.denoise ? "1" : "0"}});
  }
  if (!o.grid.empty()) {
    // Decode through the autoencoder the latents came from: the flow sees (z − shift)·scaling.
    if (o.autoencoder.empty()) fail("--grid needs --autoencoder (the one that made the training latents)");
    core::Autoencoder<float> ae = core::io::load_autoencoder<float>(o.autoencoder);
    const auto& ac = ae.config();
    if (ac.latent_channels != cfg.in_channels || ac.latent_size() != cfg.img_size)
      fail(o.autoencoder + ": makes latents of " + std::to_string(ac.latent_channels) + "×" +
           std::to_string(ac.latent_size()) + "², the model samples " + std::to_string(cfg.in_channels) + "×" +
           std::to_string(cfg.img_size) + "²");
    std::vector<float> z = result.latents;
    for (float& v : z) v = float(v / ac.scaling_factor + ac.shift_factor);
    std::vector<float> images(B * ac.image_numel());
    ae.decode(z.data(), B, images.data());
    const int64_t cols = o.grid_columns > 0 ? o.grid_columns : std::max<int64_t>(1, std::llround(std::ceil(std::sqrt(double(B)))));
    data::write_image_grid(o.grid, images, {B, ac.image_channels, ac.image_size, ac.image_size}, (B + cols - 1) / cols,
                           cols);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace starflow::jobs
