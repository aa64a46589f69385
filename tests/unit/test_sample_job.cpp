// The sampling job end to end on small class- and text-conditional models: determinism by seed, guidance and
// captions change the samples, and bad input (wrong config, class out of range, negative cfg) fails with one
// clear line before any work.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/io/model_weights.h"
#include "core/io/word_vectors.h"
#include "core/random.h"
#include "data/latent_shard.h"
#include "jobs/sample_job.h"

using namespace starflow;

namespace {

core::FlowConfig class_config(int64_t classes) {
  core::FlowConfig c;
  c.in_channels = 2;
  c.img_size = 4;
  c.num_blocks = 2;
  c.layers_per_block = {1, 1};
  c.channels = 40;
  c.head_dim = 20;
  c.txt_size = 1;
  c.txt_dim = classes + 1;
  return c;
}

std::string write_model(const core::FlowConfig& c, const std::string& name) {
  core::StarFlowModel<float> m(c);
  m.init_parameters(3);
  core::Rng r(4);
  for (float& p : m.parameters()) p += float(0.05 * r.normal());
  const std::string path = (std::filesystem::temp_directory_path() / name).string();
  core::io::save_weights(m, path);
  return path;
}

std::string error_of(const jobs::SampleJobOptions& o) {
  try {
    jobs::run_sample_job(o);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(SampleJob, SameSeedSameSamplesAndGuidanceMatters) {
  const std::string weights = write_model(class_config(3), "starflow_sample_job.safetensors");
  jobs::SampleJobOptions o;
  o.weights = weights;
  o.batch = 4;
  o.classes = {0, 2};
  o.seed = 7;
  const auto a = jobs::run_sample_job(o), b = jobs::run_sample_job(o);
  EXPECT_EQ(a.latents, b.latents);
  o.seed = 8;
  EXPECT_NE(jobs::run_sample_job(o).latents, a.latents);
  o.seed = 7;
  o.cfg = 2.0;
  EXPECT_NE(jobs::run_sample_job(o).latents, a.latents);
  o.jacobi = true;
  o.denoise = true;
  o.output = weights + ".samples.safetensors";
  const auto c = jobs::run_sample_job(o);
  const auto file = core::io::SafeTensorsFile::open(o.output);
  EXPECT_EQ(file.read<float>("samples").data, c.latents);
  EXPECT_EQ(file.metadata_value("seed"), "7");
  std::filesystem::remove(o.output);
  std::filesystem::remove(weights);
}

TEST(SampleJob, BadInputIsOneClearError) {
  const std::string weights = write_model(class_config(3), "starflow_sample_job_bad.safetensors");
  jobs::SampleJobOptions o;
  o.weights = weights;
  o.batch = 2;
  o.classes = {3};
  EXPECT_NE(error_of(o).find("--class 3 is out of range: the model has 3 classes (0..2)"), std::string::npos)
      << error_of(o);
  o.classes = {1};
  o.cfg = -1;
  EXPECT_NE(error_of(o).find("--cfg must be >= 0"), std::string::npos) << error_of(o);
  o.cfg = 1;
  o.captions = {"a cat"};
  EXPECT_NE(error_of(o).find("the model is class-conditional (3 classes): give --class, not --caption"),
            std::string::npos)
      << error_of(o);

  // Weights whose tensors do not fit the config in their metadata (a checkpoint of another model).
  core::FlowConfig other = class_config(3);
  core::StarFlowModel<float> small(other);
  other.channels = 80;
  std::vector<core::io::TensorToWrite> tensors;
  for (const auto& v : small.layout().views())
    tensors.push_back({v.name, "F32", v.shape, small.parameters().data() + v.offset, size_t(v.size) * sizeof(float)});
  const std::string mismatched = weights + ".other.safetensors";
  core::io::write_safetensors(mismatched, tensors, {{"config", other.to_official_json()}});
  o.weights = mismatched;
  o.captions.clear();
  const std::string e = error_of(o);
  EXPECT_NE(e.find(mismatched), std::string::npos) << e;
  EXPECT_NE(e.find("expected [80"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  std::filesystem::remove(mismatched);
  std::filesystem::remove(weights);
}

TEST(SampleJob, WritesLatentShardsAndChecksTheGridAutoencoder) {
  const std::string weights = write_model(class_config(3), "starflow_sample_job_h5.safetensors");
  jobs::SampleJobOptions o;
  o.weights = weights;
  o.batch = 3;
  o.classes = {0, 1, 2};
  o.output = weights + ".samples.h5";
  const auto r = jobs::run_sample_job(o);
  const data::LatentShardReader shard(o.output);
  const data::SampleBatch b = shard.read(0, 3);
  EXPECT_EQ(b.latents.data, r.latents);
  EXPECT_EQ(b.labels, (std::vector<int64_t>{0, 1, 2}));
  std::filesystem::remove(o.output);
  o.output.clear();
  o.grid = weights + ".grid.png";
  EXPECT_NE(error_of(o).find("--grid needs --autoencoder"), std::string::npos);
  // The bundled autoencoder makes 4×8×8 latents; this model samples 2×4×4.
  o.autoencoder = std::string(STARFLOW_SOURCE_DIR) + "/data/pretrained/ae_fashion_mnist_32.safetensors";
  const std::string e = error_of(o);
  EXPECT_NE(e.find("ae_fashion_mnist_32.safetensors: makes latents of 4"), std::string::npos) << e;
  std::filesystem::remove(weights);
}

TEST(SampleJob, CaptionsGoThroughTheWordVectorEncoder) {
  // A text-conditioned model (3 tokens × 2 dims) and a word-vector file of the same dimension.
  core::FlowConfig c = class_config(3);
  c.txt_size = 3;
  c.txt_dim = 2;
  const std::string weights = write_model(c, "starflow_sample_job_text.safetensors");
  const std::string vectors = weights + ".vectors.json";
  std::ofstream(vectors) << R"({"dimensions":2,"vectors":{"red":[1.5,-1],"heart":[0.5,2],"cat":[-2,0.25]}})";
  jobs::SampleJobOptions o;
  o.weights = weights;
  o.text_encoder = vectors;
  o.batch = 2;
  o.seed = 5;
  o.cfg = 2;
  o.captions = {"red heart"};
  const auto heart = jobs::run_sample_job(o);
  EXPECT_EQ(jobs::run_sample_job(o).latents, heart.latents);
  o.captions = {"cat"};
  EXPECT_NE(jobs::run_sample_job(o).latents, heart.latents);
  // Unknown words are skipped: "a red heart!" encodes exactly like "red heart".
  o.captions = {"a red heart!"};
  EXPECT_EQ(jobs::run_sample_job(o).latents, heart.latents);
  // The rows the sampler saw: the vectors of the known tokens, then zero padding; the null condition is zero.
  const auto encoder = jobs::text_encoder_for(c, vectors);
  const std::vector<std::string> rows = {"red heart", ""};
  const jobs::Conditioning cond = jobs::caption_conditioning(c, *encoder, rows);
  EXPECT_EQ(cond.y, (std::vector<float>{1.5f, -1.f, 0.5f, 2.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f}));
  EXPECT_EQ(cond.y_null, std::vector<float>(12, 0.f));

  o.classes = {1};
  EXPECT_NE(error_of(o).find("give --caption, not --class"), std::string::npos) << error_of(o);
  o.classes.clear();
  o.captions.clear();
  EXPECT_NE(error_of(o).find("guidance (--cfg) needs a condition: give --caption"), std::string::npos) << error_of(o);
  o.captions = {"cat"};
  std::ofstream(vectors) << R"({"dimensions":3,"vectors":{"cat":[1,2,3]}})";
  const std::string e = error_of(o);
  EXPECT_NE(e.find(vectors + ": a text encoder of 3 dimensions, but the model's txt_dim is 2"), std::string::npos) << e;
  std::filesystem::remove(vectors);
  std::filesystem::remove(core::io::WordVectors::cache_path_for(vectors));
  std::filesystem::remove(weights);
}
