// run_sample_job: validation, conditioning rows, sampling, denoising, output; and the shared pieces
// (conditioning, autoencoder decode) that the training previews and the demos use.
#include "jobs/sample_job.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "core/io/latent_codec_file.h"
#include "core/io/model_weights.h"
#include "core/io/text_encoder_file.h"
#include "core/io/word_vectors.h"
#include "core/models/sampler.h"
#include "core/random.h"
#include "data/io/png_io.h"
#include "data/latent_shard.h"

namespace starflow::jobs {
namespace {

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }

std::string joined(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? separator : "") + items[i];
  return out;
}

}  // namespace

bool is_class_conditional(const core::FlowConfig& model) { return model.txt_size == 1; }

Conditioning class_conditioning(const core::FlowConfig& model, std::span<const int64_t> labels) {
  if (!is_class_conditional(model)) fail("the model is not class-conditional (txt_size " + std::to_string(model.txt_size) + ")");
  const int64_t E = model.txt_dim, classes = E - 1, B = static_cast<int64_t>(labels.size());
  Conditioning c;
  c.y.assign(B * E, 0.f);
  c.y_null.assign(B * E, 0.f);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t label = labels[b];
    if (label < -1 || label >= classes)
      fail("--class " + std::to_string(label) + " is out of range: the model has " + std::to_string(classes) +
           " classes (0.." + std::to_string(classes - 1) + ")");
    c.y[b * E + (label < 0 ? E - 1 : label)] = 1.f;
    c.y_null[b * E + E - 1] = 1.f;
  }
  return c;
}

core::WordVectorTextEncoder word_vector_encoder_for(const core::FlowConfig& model, const std::string& vectors_path) {
  const std::string path = vectors_path.empty() ? data::default_word_vectors_path().string() : vectors_path;
  auto vectors = std::make_shared<const core::io::WordVectors>(core::io::WordVectors::load(path));
  if (vectors->dimensions() != model.txt_dim)
    fail(path + ": word vectors of " + std::to_string(vectors->dimensions()) + " dimensions, but the model's txt_dim is " +
         std::to_string(model.txt_dim));
  return core::WordVectorTextEncoder(std::move(vectors), model.txt_size);
}

std::unique_ptr<core::TextEncoder> text_encoder_for(const core::FlowConfig& model, const std::string& path) {
  if (path.empty()) return std::make_unique<core::WordVectorTextEncoder>(word_vector_encoder_for(model));
  std::unique_ptr<core::TextEncoder> encoder = core::io::open_text_encoder(path, model.txt_size);
  if (encoder->dimensions() != model.txt_dim)
    fail(path + ": a text encoder of " + std::to_string(encoder->dimensions()) + " dimensions, but the model's txt_dim is " +
         std::to_string(model.txt_dim));
  return encoder;
}

Conditioning caption_conditioning(const core::FlowConfig& model, core::TextEncoder& encoder,
                                  std::span<const std::string> captions) {
  if (!model.conditional() || is_class_conditional(model))
    fail("the model is not text-conditioned (txt_size " + std::to_string(model.txt_size) + "): captions do not apply");
  if (encoder.max_tokens() != model.txt_size || encoder.dimensions() != model.txt_dim)
    fail("the text encoder makes " + std::to_string(encoder.max_tokens()) + "×" + std::to_string(encoder.dimensions()) +
         " embeddings, the model takes txt_size " + std::to_string(model.txt_size) + " × txt_dim " +
         std::to_string(model.txt_dim));
  Conditioning c;
  c.y = encoder.encode(captions).embeddings.data;
  // The null condition is the empty caption's embedding (zeros for word vectors, T5's EOS row for T5).
  const std::string null_caption;
  const std::vector<float> null_row = encoder.encode(std::span<const std::string>(&null_caption, 1)).embeddings.data;
  c.y_null.reserve(c.y.size());
  for (size_t b = 0; b < captions.size(); ++b) c.y_null.insert(c.y_null.end(), null_row.begin(), null_row.end());
  return c;
}

std::unique_ptr<core::LatentCodec> load_autoencoder_for(const core::FlowConfig& model, const std::string& path) {
  std::unique_ptr<core::LatentCodec> codec = core::io::open_latent_codec(path);
  // A codec of any resolution (the SD-VAE) decodes at the size whose latents the model samples.
  if (codec->latent_size() != model.img_size && codec->image_size() % codec->latent_size() == 0) {
    try {
      codec->set_image_size(model.img_size * (codec->image_size() / codec->latent_size()));
    } catch (const std::invalid_argument&) {
      // a fixed-size codec: the mismatch is reported below
    }
  }
  if (codec->latent_channels() != model.in_channels || codec->latent_size() != model.img_size)
    fail(path + ": makes latents of " + std::to_string(codec->latent_channels()) + "×" +
         std::to_string(codec->latent_size()) + "², the model samples " + std::to_string(model.in_channels) + "×" +
         std::to_string(model.img_size) + "²");
  return codec;
}

std::vector<float> decode_latents(core::LatentCodec& codec, std::span<const float> latents, int64_t B) {
  // The flow sees (z − shift)·scaling; the decoder takes z.
  std::vector<float> z(latents.begin(), latents.end());
  for (float& v : z) v = float(v / codec.scaling_factor() + codec.shift_factor());
  std::vector<float> images(B * codec.image_numel());
  codec.decode(z.data(), B, images.data());
  return images;
}

SampleJobResult run_sample_job(const SampleJobOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.weights.empty()) fail("no weights given (--weights FILE.safetensors)");
  if (o.batch < 1) fail("--batch must be at least 1");
  if (o.cfg < 0) fail("--cfg must be >= 0 (got " + std::to_string(o.cfg) + ")");
  if (o.noise_std < 0) fail("--noise-std must be >= 0");
  if (!(o.attention_temperature > 0)) fail("--attn-temp must be > 0");
  if (o.jacobi && o.attention_temperature != 1)
    fail("--attn-temp applies to sequential decoding only (as the official sampler: Jacobi ignores it)");
  if (o.jacobi && (o.jacobi_block_size < 1 || o.jacobi_max_iter < 1 || o.jacobi_threshold < 0))
    fail("Jacobi settings must be positive (block size, iterations) and a threshold >= 0");
  if (!o.grid.empty() && o.autoencoder.empty()) fail("--grid needs --autoencoder (the one that made the training latents)");

  {
    // A training checkpoint given where the exported weights belong: say so, rather than "bad header".
    char magic[13] = {};
    std::ifstream(o.weights, std::ios::binary).read(magic, sizeof magic);
    if (std::string(magic, sizeof magic) == "STARFLOW-CKPT")
      fail(o.weights + ": a training checkpoint, not weights; export them first: starflow convert --from " + o.weights +
           " --to W.safetensors");
  }
  const core::io::SafeTensorsFile file = core::io::SafeTensorsFile::open(o.weights);
  const core::FlowConfig cfg = core::io::read_config(file);
  // Before any work: the grid's autoencoder must decode this model's latents.
  std::unique_ptr<core::LatentCodec> ae;
  if (!o.grid.empty()) ae = load_autoencoder_for(cfg, o.autoencoder);

  // Conditioning: the one-hot class path (txt_size 1, txt_dim = classes + null) or word-vector text.
  const int64_t B = o.batch;
  Conditioning cond;
  if (!cfg.conditional()) {
    if (!o.classes.empty()) fail(o.weights + ": the model is unconditional: --class is not accepted");
    if (!o.captions.empty()) fail(o.weights + ": the model is unconditional: --caption is not accepted");
    if (o.cfg > 0) fail(o.weights + ": the model is unconditional: guidance (--cfg) needs a conditional model");
  } else if (is_class_conditional(cfg)) {
    if (!o.captions.empty())
      fail(o.weights + ": the model is class-conditional (" + std::to_string(cfg.txt_dim - 1) +
           " classes): give --class, not --caption");
    if (o.classes.empty() && o.cfg > 0) fail("guidance (--cfg) needs a condition: give --class");
    std::vector<int64_t> labels(B, -1);
    for (int64_t b = 0; b < B && !o.classes.empty(); ++b) labels[b] = o.classes[b % o.classes.size()];
    cond = class_conditioning(cfg, labels);
  } else {
    if (!o.classes.empty())
      fail(o.weights + ": the model is text-conditioned (txt_size " + std::to_string(cfg.txt_size) +
           "): give --caption, not --class");
    if (o.captions.empty() && o.cfg > 0) fail("guidance (--cfg) needs a condition: give --caption");
    std::vector<std::string> rows(B);
    for (int64_t b = 0; b < B && !o.captions.empty(); ++b) rows[b] = o.captions[b % o.captions.size()];
    const std::unique_ptr<core::TextEncoder> encoder = text_encoder_for(cfg, o.text_encoder);
    cond = caption_conditioning(cfg, *encoder, rows);
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
  so.attention_temperature = o.attention_temperature;
  SamplingRequest request;
  request.model = cfg;
  request.weights = &file;
  request.tp = o.tp;
  request.noise = noise;
  request.y = cfg.conditional() ? cond.y.data() : nullptr;
  request.y_null = o.cfg > 0 ? cond.y_null.data() : nullptr;
  request.batch = B;
  request.options = so;
  request.denoise = o.denoise;
  request.noise_std = o.noise_std;
  SampleJobResult result;
  result.latents = o.sampler ? o.sampler(request) : sample_latents_on_cpu(request);
  result.shape = {B, cfg.in_channels, cfg.img_size, cfg.img_size};
  if (o.tp && o.tp->rank() != 0) {  // every TP rank holds the same samples; rank 0 writes them
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return result;
  }

  std::vector<std::string> class_names;
  for (int64_t c : o.classes) class_names.push_back(std::to_string(c));
  if (o.output.size() > 3 && o.output.compare(o.output.size() - 3, 3, ".h5") == 0) {
    // A latent shard (data/FORMAT.md), so samples can feed anything that reads shards.
    data::ShardHeader h;
    h.autoencoder = o.autoencoder.empty() ? "none" : o.autoencoder;
    h.latent_shape = {cfg.in_channels, cfg.img_size, cfg.img_size};
    h.latent_type = data::StorageType::Float32;
    h.source = "starflow sample " + o.weights + " seed " + std::to_string(o.seed) + " cfg " + std::to_string(o.cfg);
    std::vector<int64_t> ids(B), labels(B);
    std::vector<std::string> captions;
    for (int64_t b = 0; b < B; ++b) ids[b] = b, labels[b] = o.classes.empty() ? 0 : o.classes[b % o.classes.size()];
    for (int64_t b = 0; b < B && !o.captions.empty(); ++b) captions.push_back(o.captions[b % o.captions.size()]);
    if (!o.classes.empty()) h.conditioning = data::Conditioning::ClassLabels, h.num_classes = cfg.txt_dim - 1;
    h.has_captions = !captions.empty();
    data::LatentShardWriter writer(o.output, h);
    data::SampleSpans spans;
    spans.count = B;
    spans.latents = result.latents;
    spans.sample_ids = ids;
    if (!o.classes.empty()) spans.labels = labels;
    if (h.has_captions) spans.captions = captions;
    writer.append(spans);
    writer.finish();
  } else if (!o.output.empty()) {
    core::io::write_safetensors(
        o.output, {{"samples", "F32", result.shape, result.latents.data(), result.latents.size() * sizeof(float)}},
        {{"format", "starflow-samples-v1"}, {"weights", o.weights}, {"config", cfg.to_official_json()},
         {"seed", std::to_string(o.seed)}, {"cfg", std::to_string(o.cfg)}, {"classes", joined(class_names, ",")},
         {"captions", joined(o.captions, "\n")}, {"jacobi", o.jacobi ? "1" : "0"}, {"denoise", o.denoise ? "1" : "0"},
         {"attn_temp", std::to_string(o.attention_temperature)}});
  }
  if (ae) {
    const std::vector<float> images = decode_latents(*ae, result.latents, B);
    const int64_t cols = o.grid_columns > 0 ? o.grid_columns : std::max<int64_t>(1, std::llround(std::ceil(std::sqrt(double(B)))));
    data::write_image_grid(o.grid, images, {B, ae->image_channels(), ae->image_size(), ae->image_size()},
                           (B + cols - 1) / cols,
                           cols);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace starflow::jobs
