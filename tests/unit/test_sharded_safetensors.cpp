// Memory-mapped safetensors reading and sharded checkpoints (core/io/mapped_file.h, sharded_safetensors.h):
// opening maps without reading the data, a converted tensor's pages are handed back, an index spreads tensors over
// shards, F16/BF16/F32 convert, and every defect is one line naming the file and the tensor.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/io/float16.h"
#include "core/io/safetensors.h"
#include "core/io/sharded_safetensors.h"

using namespace starflow::core;
using namespace starflow::core::io;
namespace fs = std::filesystem;

namespace {

class ShardedTest : public testing::Test {
 protected:
  void SetUp() override {
    const auto* test = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(testing::TempDir()) / ("starflow_sharded_" + std::string(test->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  void write_index(const std::string& name, const nlohmann::json& weight_map) const {
    std::ofstream(file(name)) << nlohmann::json{{"metadata", {{"total_size", 123}}}, {"weight_map", weight_map}}.dump(2);
  }
  fs::path dir_;
};

// kB of this process's resident pages of a kind ("RssFile", "RssAnon") from /proc/self/status.
int64_t resident_kb(const std::string& kind) {
  std::ifstream status("/proc/self/status");
  std::string key;
  int64_t value = 0;
  while (status >> key) {
    if (key == kind + ":") {
      status >> value;
      return value;
    }
    status.ignore(1 << 20, '\n');
  }
  return -1;
}

void expect_error(const std::function<void()>& action, const std::vector<std::string>& phrases) {
  try {
    action();
    ADD_FAILURE() << "no error; expected one containing '" << phrases.front() << "'";
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    for (const std::string& phrase : phrases) EXPECT_NE(message.find(phrase), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

std::vector<float> ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * (static_cast<float>(i % 97) - 48.0f);
  return v;
}

}  // namespace

// Opening a 64 MiB file maps it and parses the header only; converting its big tensor into caller memory copies
// it once and leaves none of its file pages resident in this process.
TEST_F(ShardedTest, MappedFileReadsOnlyWhatIsConvertedAndReleasesIt) {
  const size_t n = size_t(16) << 20;
  std::vector<float> big = ramp(n, 0.5f), small = {1.f, 2.f, 3.f};
  write_safetensors(file("big.safetensors"), {{"big", "F32", {int64_t(n)}, big.data(), n * 4},
                                              {"small", "F32", {3}, small.data(), 12}});
  std::vector<float> destination(n, -1.f);  // touched before measuring, so its pages do not count as new

  const int64_t before = resident_kb("RssFile");
  ASSERT_GE(before, 0) << "no RssFile in /proc/self/status";
  const SafeTensorsFile f = SafeTensorsFile::open(file("big.safetensors"));
  EXPECT_LT(resident_kb("RssFile") - before, 4 << 10) << "opening read the data section";
  EXPECT_EQ(f.read<float>("small", {3}).data, small);
  f.read_into<float>("big", {int64_t(n)}, std::span<float>(destination));
  EXPECT_EQ(destination, big);
  EXPECT_LT(resident_kb("RssFile") - before, 4 << 10) << "the converted tensor's pages stayed resident";
  // The mapping still reads after its pages were handed back.
  EXPECT_EQ(f.read<float>("big", {int64_t(n)}).data[n - 1], big[n - 1]);
  EXPECT_THROW(f.read_into<float>("big", {int64_t(n)}, std::span<float>(destination.data(), 5)), std::invalid_argument);
}

TEST_F(ShardedTest, IndexSpreadsTensorsOverShardsInAnyFloatDtype) {
  const std::vector<float> a = {1.5f, -2.25f, 3.0f, 0.125f}, c = {7.0f, -8.5f};
  std::vector<uint16_t> b_half, c_bf16;
  const std::vector<float> b = {0.5f, -1.0f, 65504.0f};
  for (float x : b) b_half.push_back(float_to_half_bits(x));
  for (float x : c) c_bf16.push_back(float_to_bfloat16_bits(x));
  write_safetensors(file("model-00001-of-00002.safetensors"),
                    {{"a.weight", "F32", {2, 2}, a.data(), 16}, {"b.weight", "F16", {3}, b_half.data(), 6}});
  write_safetensors(file("model-00002-of-00002.safetensors"), {{"c.weight", "BF16", {2}, c_bf16.data(), 4}});
  write_index("model.safetensors.index.json", {{"a.weight", "model-00001-of-00002.safetensors"},
                                               {"b.weight", "model-00001-of-00002.safetensors"},
                                               {"c.weight", "model-00002-of-00002.safetensors"}});
  for (const std::string& path : {dir_.string(), file("model.safetensors.index.json")}) {
    const ShardedSafeTensors ckpt = ShardedSafeTensors::open(path);
    EXPECT_EQ(ckpt.path(), file("model.safetensors.index.json"));
    EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"a.weight", "b.weight", "c.weight"}));
    EXPECT_EQ(ckpt.index_metadata().at("total_size"), "123");
    EXPECT_EQ(ckpt.shard_path("c.weight"), file("model-00002-of-00002.safetensors"));
    EXPECT_EQ(ckpt.info("b.weight").dtype, "F16");
    EXPECT_EQ(ckpt.read<float>("a.weight", {2, 2}).data, a);
    EXPECT_EQ(ckpt.read<float>("b.weight", {3}).data, b);
    EXPECT_EQ(ckpt.read<double>("c.weight", {2}).data, (std::vector<double>{7.0, -8.5}));
    EXPECT_FALSE(ckpt.has("d.weight"));
  }
}

TEST_F(ShardedTest, SingleFileByPathOrFolder) {
  const std::vector<float> a = {1.f, 2.f};
  write_safetensors(file("model.safetensors"), {{"a", "F32", {2}, a.data(), 8}});
  EXPECT_EQ(ShardedSafeTensors::open(dir_.string()).read<float>("a", {2}).data, a);
  EXPECT_EQ(ShardedSafeTensors::open(file("model.safetensors")).read<float>("a", {2}).data, a);
  expect_error([&] { ShardedSafeTensors::open(dir_.string()).read<float>("a", {3}); },
               {file("model.safetensors") + ": ", "'a'", "[2]", "expected [3]"});
  expect_error([&] { ShardedSafeTensors::open(dir_.string()).info("zz"); }, {file("model.safetensors") + ": ", "'zz'"});
}

TEST_F(ShardedTest, DefectsAreOneLineNamingTheFileAndTheTensor) {
  const std::vector<float> a = {1.f, 2.f};
  const std::vector<int64_t> ids = {4, 5};
  write_safetensors(file("one.safetensors"), {{"a", "F32", {2}, a.data(), 8}, {"ids", "I64", {2}, ids.data(), 16}});

  // A shard the index names but the folder lacks: the index, the shard and a tensor it was to hold.
  write_index("missing.index.json", {{"a", "one.safetensors"}, {"b", "two.safetensors"}});
  expect_error([&] { ShardedSafeTensors::open(file("missing.index.json")); },
               {file("missing.index.json") + ": ", "'two.safetensors'", "'b'", "missing"});

  // A tensor the index maps to a shard that does not hold it: the shard first, then the index.
  write_index("lying.index.json", {{"a", "one.safetensors"}, {"ghost", "one.safetensors"}});
  const ShardedSafeTensors lying = ShardedSafeTensors::open(file("lying.index.json"));
  expect_error([&] { lying.read<float>("ghost", {2}); },
               {file("one.safetensors") + ": ", "'ghost'", file("lying.index.json")});
  expect_error([&] { lying.read<float>("nowhere", {2}); }, {file("lying.index.json") + ": ", "'nowhere'"});

  // An integer tensor is not a weight.
  write_index("ints.index.json", {{"ids", "one.safetensors"}});
  expect_error([&] { ShardedSafeTensors::open(file("ints.index.json")).read<float>("ids", {2}); },
               {file("one.safetensors") + ": ", "'ids'", "I64"});

  // A dtype the format does not know (an fp8 shard): the shard and the tensor, at open.
  {
    std::string header = R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})";
    header.append((8 - header.size() % 8) % 8, ' ');
    const uint64_t length = header.size();
    std::ofstream out(file("fp8.safetensors"), std::ios::binary);
    out.write(reinterpret_cast<const char*>(&length), 8);
    out << header << "ab";
  }
  write_index("fp8.index.json", {{"w", "fp8.safetensors"}});
  expect_error([&] { ShardedSafeTensors::open(file("fp8.index.json")); },
               {file("fp8.safetensors") + ": ", "'w'", "F8_E4M3"});

  std::ofstream(file("broken.index.json")) << "{\"weight_map\": ";
  expect_error([&] { ShardedSafeTensors::open(file("broken.index.json")); }, {file("broken.index.json") + ": ", "JSON"});
  std::ofstream(file("nomap.index.json")) << R"({"metadata": {}})";
  expect_error([&] { ShardedSafeTensors::open(file("nomap.index.json")); }, {file("nomap.index.json") + ": ", "weight_map"});
  fs::create_directories(dir_ / "empty");
  expect_error([&] { ShardedSafeTensors::open(file("empty")); },
               {file("empty") + ": ", "model.safetensors.index.json", "model.safetensors"});
  expect_error([&] { ShardedSafeTensors::open(file("absent.safetensors")); },
               {file("absent.safetensors") + ": ", "cannot open"});
}
