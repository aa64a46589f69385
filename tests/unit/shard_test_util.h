// Helpers for the shard tests: a scratch directory per test, tiny shards whose contents are a function of
// the sample id (so any sample read back can be checked wherever it came from), and byte-level damage.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/io/float16.h"
#include "data/latent_shard.h"

namespace starflow::data::testing_util {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards (ctest runs tests in parallel processes).
class ShardDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) / ("starflow_" + std::string(test->test_suite_name()) + "_" +
                                             test->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

inline ShardHeader tiny_header(Conditioning conditioning, StorageType type = StorageType::Float32,
                               bool captions = false) {
  ShardHeader h;
  h.autoencoder = "tiny-ae";
  h.scaling_factor = 0.5;
  h.latent_shape = {2, 3, 3};
  h.latent_type = type;
  h.conditioning = conditioning;
  if (conditioning == Conditioning::ClassLabels) h.num_classes = 10;
  if (conditioning == Conditioning::TextEmbeddings) {
    h.text_encoder = "wink-sg-100d";
    h.text_length = 4;
    h.text_dim = 5;
    h.text_type = type;
  }
  h.has_captions = captions;
  h.source = "unit test";
  return h;
}

// Not exactly representable in float16, so the float16 tests see real rounding.
inline float latent_value(int64_t id, int64_t i) { return static_cast<float>(3.0 * std::sin(0.37 * id + 1.13 * i)); }
inline float text_value(int64_t id, int64_t i) { return static_cast<float>(std::cos(0.11 * id - 0.7 * i)); }
inline float stored(float value, StorageType type) {
  if (type == StorageType::BFloat16) return core::io::bfloat16_bits_to_float(core::io::float_to_bfloat16_bits(value));
  return type == StorageType::Float32 ? value : core::io::half_bits_to_float(core::io::float_to_half_bits(value));
}
inline std::string caption(int64_t id) { return "sample " + std::to_string(id) + " — ünïcödé"; }

// Samples with ids [first_id, first_id + count), shaped for `h`.
inline SampleBatch make_samples(const ShardHeader& h, int64_t first_id, int64_t count) {
  SampleBatch b = SampleBatch::allocate(h, count, true);
  for (int64_t s = 0; s < count; ++s) {
    const int64_t id = first_id + s;
    b.sample_ids[s] = id;
    for (int64_t i = 0; i < h.latent_numel(); ++i) b.latents.data[s * h.latent_numel() + i] = latent_value(id, i);
    if (h.conditioning == Conditioning::ClassLabels) b.labels[s] = id % h.num_classes;
    if (h.conditioning == Conditioning::TextEmbeddings) {
      for (int64_t i = 0; i < h.text_numel(); ++i) b.text_embeddings.data[s * h.text_numel() + i] = text_value(id, i);
      for (int64_t t = 0; t < h.text_length; ++t) b.text_mask.data[s * h.text_length + t] = t <= id % h.text_length;
    }
    if (h.has_captions) b.captions[s] = caption(id);
  }
  return b;
}

// Writes ids [first_id, first_id + count) in appends of `per_append` samples.
inline void write_shard(const std::string& path, const ShardHeader& h, int64_t first_id, int64_t count,
                        int64_t per_append = 5, ShardWriterOptions options = {}) {
  LatentShardWriter writer(path, h, options);
  for (int64_t done = 0; done < count; done += per_append)
    writer.append(make_samples(h, first_id + done, std::min(per_append, count - done)));
  writer.finish();
}

// Checks that slot `slot` of `batch` holds sample `id` exactly as stored with header `h`.
inline void expect_sample(const ShardHeader& h, const SampleBatch& batch, int64_t slot, int64_t id) {
  ASSERT_EQ(batch.sample_ids[slot], id);
  for (int64_t i = 0; i < h.latent_numel(); ++i)
    ASSERT_EQ(batch.latents.data[slot * h.latent_numel() + i], stored(latent_value(id, i), h.latent_type))
        << "sample " << id << " latent " << i;
  if (h.conditioning == Conditioning::ClassLabels) {
    ASSERT_EQ(batch.labels[slot], id % h.num_classes);
  }
  if (h.conditioning == Conditioning::TextEmbeddings) {
    // Only the valid rows are stored (version 2): padded rows read back as zeros.
    const int64_t valid = id % h.text_length + 1;
    for (int64_t i = 0; i < h.text_numel(); ++i)
      ASSERT_EQ(batch.text_embeddings.data[slot * h.text_numel() + i],
                i / h.text_dim < valid ? stored(text_value(id, i), h.text_type) : 0.f)
          << "sample " << id << " text value " << i;
    for (int64_t t = 0; t < h.text_length; ++t)
      ASSERT_EQ(batch.text_mask.data[slot * h.text_length + t], t <= id % h.text_length ? 1 : 0);
  }
  if (!batch.captions.empty()) {
    ASSERT_EQ(batch.captions[slot], caption(id));
  }
}

inline std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Flips every bit of `count` bytes at `offset` (a flip always changes them, whatever they held).
inline void flip_bytes(const std::string& path, size_t offset, size_t count) {
  std::vector<char> bytes = read_bytes(path);
  ASSERT_LE(offset + count, bytes.size());
  for (size_t i = offset; i < offset + count; ++i) bytes[i] = static_cast<char>(~bytes[i]);
  write_bytes(path, bytes);
}

// stdout and stderr of a shell command, and its exit status.
inline std::string run_command(const std::string& command, int& status) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    status = -1;
    return output;
  }
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  status = ::pclose(pipe);
  return output;
}

// The error `action` throws, checked to be one line that starts with `path: `.
template <class Action>
std::string one_line_error(const std::string& path, Action action) {
  try {
    action();
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }
  ADD_FAILURE() << "no error for " << path;
  return "";
}

}  // namespace starflow::data::testing_util
