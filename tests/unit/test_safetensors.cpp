// safetensors reader/writer: round trips, the real golden fixtures, one-line errors for damaged files,
// the atomic replace, and exhaustive checks of the F16/BF16 conversions.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/io/float16.h"
#include "core/io/safetensors.h"
#include "tests/golden/golden_fixtures.h"

using namespace starflow::core;
using namespace starflow::core::io;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kGoldenFiles = {"tiny_uncond", "tiny_text", "tiny_patch2", "tiny_class"};
std::string golden(const std::string& stem) { return starflow::testing::golden_fixture(stem + ".safetensors"); }

// A fresh directory per test, removed afterwards (gtest may run tests in parallel processes).
class SafeTensorsTest : public testing::Test {
 protected:
  void SetUp() override {
    const auto* test = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(testing::TempDir()) /
           ("starflow_safetensors_" + std::string(test->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// Throws (one line naming the file) rather than returning nothing, so that a test never reads past an empty buffer.
std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open for reading");
  std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw std::runtime_error(path + ": read failed");
  return bytes;
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// A file from a hand-written header (padded as the format asks) and raw data bytes.
void write_raw_file(const std::string& path, std::string header, size_t data_bytes) {
  header.append((8 - header.size() % 8) % 8, ' ');
  const uint64_t length = header.size();
  std::vector<char> bytes(8 + header.size() + data_bytes, '\0');
  std::memcpy(bytes.data(), &length, 8);
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  write_bytes(path, bytes);
}

// Asserts that `action` throws a runtime_error whose message is one line naming `path` and `phrase`.
void expect_error(const std::function<void()>& action, const std::string& path, const std::string& phrase) {
  try {
    action();
    ADD_FAILURE() << "no error; expected one containing '" << phrase << "'";
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(phrase), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

template <class T>
bool bit_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

}  // namespace

TEST_F(SafeTensorsTest, RoundTripKeepsBitsShapesOrderAndMetadata) {
  Tensor<float> weights({2, 3});
  for (int i = 0; i < 6; ++i) weights.data[i] = std::nextafter(0.1f * float(i) - 0.25f, 1.0f);
  weights.data[5] = -0.0f;
  Tensor<double> doubles({4});
  doubles.data = {1.0 / 3.0, -2.5e-300, std::numeric_limits<double>::denorm_min(), 6.02214076e23};
  Tensor<double> scalar(Shape{});
  scalar.data[0] = 0.689321020992;
  const std::vector<int64_t> ids = {-7, 0, (int64_t(1) << 40) + 3};
  const std::vector<uint16_t> halves = {0x3c00, 0xc000, 0x0001, 0x7bff};  // 1, -2, 2^-24, 65504
  const std::map<std::string, std::string> metadata = {{"config", R"({"channels": 128})"}, {"step", "12"}};

  const std::string path = file("round_trip.safetensors");
  write_safetensors(path,
                    {from_tensor("z.weights", weights), from_tensor("a.doubles", doubles),
                     from_tensor("loss", scalar), {"ids", "I64", {3}, ids.data(), ids.size() * 8},
                     {"halves", "F16", {2, 2}, halves.data(), halves.size() * 2}},
                    metadata);

  const SafeTensorsFile file = SafeTensorsFile::open(path);
  EXPECT_EQ(file.path(), path);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"z.weights", "a.doubles", "loss", "ids", "halves"}));
  EXPECT_EQ(file.metadata(), metadata);
  EXPECT_EQ(file.metadata_value("step"), "12");
  EXPECT_TRUE(file.has("loss"));
  EXPECT_FALSE(file.has("nope"));

  EXPECT_EQ(file.info("z.weights").dtype, "F32");
  EXPECT_EQ(file.info("z.weights").begin, 0u);
  EXPECT_EQ(file.info("a.doubles").begin, 24u);
  const Tensor<float> weights_back = file.read<float>("z.weights", {2, 3});
  EXPECT_TRUE(bit_equal(weights_back.data, weights.data));
  EXPECT_TRUE(bit_equal(file.read<double>("a.doubles").data, doubles.data));
  EXPECT_TRUE(bit_equal(file.read<double>("z.weights").data,
                        std::vector<double>(weights.data.begin(), weights.data.end())));

  EXPECT_EQ(file.info("loss").dtype, "F64");
  EXPECT_TRUE(file.info("loss").shape.empty());
  const Tensor<double> scalar_back = file.read<double>("loss", {});
  ASSERT_EQ(scalar_back.size(), 1);
  EXPECT_TRUE(bit_equal(scalar_back.data, scalar.data));

  EXPECT_EQ(file.read<double>("ids").data, (std::vector<double>{-7.0, 0.0, double((int64_t(1) << 40) + 3)}));
  EXPECT_EQ(file.read<float>("halves").data, (std::vector<float>{1.0f, -2.0f, 0x1p-24f, 65504.0f}));
  EXPECT_EQ(file.read<float>("halves").shape, (Shape{2, 2}));

  // The layout is the format's: header length multiple of 8, tensors back to back right after it.
  const std::vector<char> bytes = read_bytes(path);
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), 8);
  EXPECT_EQ(header_bytes % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + header_bytes + 24 + 32 + 8 + 24 + 8);
  float first = 0;
  std::memcpy(&first, bytes.data() + 8 + header_bytes, 4);
  EXPECT_EQ(std::memcmp(&first, &weights.data[0], 4), 0);
}

TEST_F(SafeTensorsTest, EmptyFileAndZeroSizedTensors) {
  const std::string path = file("empty.safetensors");
  write_safetensors(path, {});
  EXPECT_TRUE(SafeTensorsFile::open(path).names().empty());

  const Tensor<float> nothing({0, 5});
  const Tensor<float> one({1}, 2.0f);
  write_safetensors(path, {from_tensor("nothing", nothing), from_tensor("one", one)});
  const SafeTensorsFile file = SafeTensorsFile::open(path);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"nothing", "one"}));
  EXPECT_EQ(file.read<float>("nothing").size(), 0);
  EXPECT_EQ(file.read<float>("one").data, std::vector<float>{2.0f});
}

TEST(SafeTensorsGolden, EveryFileOpensAndEveryTensorIsInside) {
  for (const std::string& stem : kGoldenFiles) {
    SCOPED_TRACE(stem);
    const std::string path = golden(stem);
    const SafeTensorsFile file = SafeTensorsFile::open(path);
    const std::vector<char> bytes = read_bytes(path);
    uint64_t header_bytes = 0;
    std::memcpy(&header_bytes, bytes.data(), 8);
    const uint64_t data_bytes = bytes.size() - 8 - header_bytes;
    ASSERT_GT(file.names().size(), 100u);
    uint64_t expected_begin = 0;  // the fixtures store tensors back to back with no gaps
    for (const std::string& name : file.names()) {
      const TensorInfo& info = file.info(name);
      EXPECT_EQ(info.begin, expected_begin) << name;
      EXPECT_LE(info.end, data_bytes) << name;
      ASSERT_EQ(file.raw(name).size(), info.bytes()) << name;
      EXPECT_EQ(std::memcmp(file.raw(name).data(), bytes.data() + 8 + header_bytes + info.begin, info.bytes()), 0);
      expected_begin = info.end;
      EXPECT_TRUE(info.dtype == "F32" || (info.dtype == "F64" && info.shape.empty())) << name;
    }
    EXPECT_EQ(expected_begin, data_bytes);  // no trailing bytes either
    EXPECT_EQ(nlohmann::json::parse(file.metadata_value("config")).at("channels"), 64);
    for (const char* loss : {"loss.nll", "loss.total", "loss.z", "loss.logdet", "loss.latent_norm"})
      EXPECT_TRUE(std::isfinite(file.read<double>(loss, {}).data[0])) << loss;
  }
}

TEST(SafeTensorsGolden, TinyUncondKnownValues) {
  const SafeTensorsFile file = SafeTensorsFile::open(golden("tiny_uncond"));
  EXPECT_EQ(file.info("param.blocks.0.proj_in.weight").shape, (Shape{64, 4}));
  const Tensor<float> weight = file.read<float>("param.blocks.0.proj_in.weight", {64, 4});
  EXPECT_EQ(weight.size(), 256);
  EXPECT_TRUE(bit_equal(file.read<double>("param.blocks.0.proj_in.weight").data,
                        std::vector<double>(weight.data.begin(), weight.data.end())));
  EXPECT_EQ(file.info("loss.nll").dtype, "F64");
  EXPECT_TRUE(file.info("loss.nll").shape.empty());
  EXPECT_NEAR(file.read<double>("loss.nll", {}).data[0], 0.670180421452, 1e-12);
  EXPECT_NEAR(file.read<double>("loss.total", {}).data[0], 0.670552003264, 1e-12);
  // The README's buffers: var is all ones, the deprecated RoPE tables all zeros.
  for (float v : file.read<float>("param.var").data) ASSERT_EQ(v, 1.0f);
  for (float v : file.read<float>("param.feat_rope.freqs_cos").data) ASSERT_EQ(v, 0.0f);
}

TEST_F(SafeTensorsTest, TruncatedFilesFailWithOneLine) {
  const std::vector<char> whole = read_bytes(golden("tiny_uncond"));
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, whole.data(), 8);
  const std::string path = file("truncated.safetensors");
  const auto reopen = [&] { SafeTensorsFile::open(path); };

  write_bytes(path, std::vector<char>(whole.begin(), whole.begin() + 5));
  expect_error(reopen, path, "file too short (5 bytes)");
  write_bytes(path, std::vector<char>(whole.begin(), whole.begin() + 1000));
  expect_error(reopen, path, "header length " + std::to_string(header_bytes) + " exceeds the file size");
  write_bytes(path, std::vector<char>(whole.begin(), whole.end() - 1));
  expect_error(reopen, path, "run past the end of the data section");
}

TEST_F(SafeTensorsTest, CorruptHeaderJsonFails) {
  std::vector<char> bytes = read_bytes(golden("tiny_text"));
  bytes[8] = '#';  // the header's opening brace
  const std::string path = file("corrupt.safetensors");
  write_bytes(path, bytes);
  expect_error([&] { SafeTensorsFile::open(path); }, path, "header is not valid JSON");

  write_raw_file(path, R"({"a": {"dtype": "F32", "shape": [1e999], "data_offsets": [0, 4]}})", 4);
  expect_error([&] { SafeTensorsFile::open(path); }, path, "header is not valid JSON");
  write_raw_file(path, "[1, 2]", 0);
  expect_error([&] { SafeTensorsFile::open(path); }, path, "header is not a JSON object");
}

TEST_F(SafeTensorsTest, HeaderLengthBeyondFileFails) {
  const std::string path = file("long_header.safetensors");
  std::vector<char> bytes(16, ' ');
  const uint64_t length = 9;  // one byte more than follows
  std::memcpy(bytes.data(), &length, 8);
  write_bytes(path, bytes);
  expect_error([&] { SafeTensorsFile::open(path); }, path, "header length 9 exceeds the file size (16 bytes)");
  expect_error([&] { SafeTensorsFile::open(file("missing.safetensors")); }, file("missing.safetensors"),
               "cannot open for reading");
}

TEST_F(SafeTensorsTest, BadEntriesFail) {
  const std::string path = file("bad.safetensors");
  const auto check = [&](const std::string& header, size_t data_bytes, const std::string& phrase) {
    SCOPED_TRACE(header);
    write_raw_file(path, header, data_bytes);
    expect_error([&] { SafeTensorsFile::open(path); }, path, phrase);
  };
  check(R"({"a": {"shape": [2], "data_offsets": [0, 8]}})", 8, "tensor 'a': missing or non-string 'dtype'");
  check(R"({"a": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}})", 2, "unsupported dtype 'F8_E4M3'");
  check(R"({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8, "not a list of non-negative");
  check(R"({"a": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}})", 8, "non-array 'shape'");
  check(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", 8, "'data_offsets' must be [begin, end]");
  check(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8, "run backwards");
  check(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8,
        "data_offsets [0, 8] hold 8 bytes but F32 [3] needs 12");
  check(R"({"a": {"dtype": "F32", "shape": [4611686018427387904, 8], "data_offsets": [0, 8]}})", 8, "too large");
  check(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", 8, "run past the end");
  check(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
        16, "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
  check(R"({"a\nb": 7})", 0, "tensor 'a?b': header entry is not a JSON object");
  check(R"({"__metadata__": {"k": 1}})", 0, "metadata 'k' is not a string");
  check(R"({"__metadata__": []})", 0, "'__metadata__' is not a JSON object");
}

TEST_F(SafeTensorsTest, LookupErrorsNameTheFile) {
  const std::string path = golden("tiny_uncond");
  const SafeTensorsFile file = SafeTensorsFile::open(path);
  expect_error([&] { file.info("param.nope"); }, path, "no tensor 'param.nope'");
  expect_error([&] { file.read<float>("param.nope"); }, path, "no tensor 'param.nope'");
  expect_error([&] { file.metadata_value("nope"); }, path, "no metadata key 'nope'");
  expect_error([&] { file.read<float>("param.blocks.0.proj_in.weight", {4, 64}); }, path,
               "tensor 'param.blocks.0.proj_in.weight' has shape [64, 4], expected [4, 64]");
  expect_error([&] { file.read<double>("loss.nll", {1}); }, path, "has shape [], expected [1]");
}

TEST_F(SafeTensorsTest, WriterRejectsBadInput) {
  const std::string path = file("rejected.safetensors");
  const float values[2] = {1, 2};
  const auto check = [&](const std::vector<TensorToWrite>& tensors, const std::string& phrase) {
    expect_error([&] { write_safetensors(path, tensors); }, path, phrase);
    EXPECT_FALSE(fs::exists(path));
  };
  check({{"a", "F32", {3}, values, 8}}, "8 bytes given but F32 [3] needs 12");
  check({{"a", "F17", {2}, values, 8}}, "unsupported dtype 'F17'");
  check({{"a", "F32", {2}, values, 8}, {"a", "F32", {2}, values, 8}}, "tensor 'a' appears twice");
  check({{"__metadata__", "F32", {2}, values, 8}}, "invalid tensor '__metadata__' name");
  check({{"a", "F32", {2}, nullptr, 8}}, "null data");
  const std::string nowhere = file("no_such_dir/x.safetensors");
  expect_error([&] { write_safetensors(nowhere, {{"a", "F32", {2}, values, 8}}); }, nowhere, "cannot create");
}

TEST_F(SafeTensorsTest, AtomicReplaceLeavesNoTemporaryFile) {
  const std::string path = file("model.safetensors");
  const Tensor<float> big({1000, 100}, 3.0f);
  write_safetensors(path, {from_tensor("big", big), from_tensor("other", Tensor<float>({7}, 1.0f))},
                    {{"version", "1"}});
  const uintmax_t big_size = fs::file_size(path);

  const Tensor<double> small({2}, -1.0);
  write_safetensors(path, {from_tensor("small", small)});
  EXPECT_LT(fs::file_size(path), big_size);
  const SafeTensorsFile file = SafeTensorsFile::open(path);
  EXPECT_EQ(file.names(), std::vector<std::string>{"small"});
  EXPECT_TRUE(file.metadata().empty());
  EXPECT_EQ(file.read<double>("small").data, small.data);

  for (const auto& entry : fs::directory_iterator(dir_))
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos) << entry.path();
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

// Widening then narrowing every non-NaN pattern is the identity, and every midpoint between neighbours
// rounds to the even one (with the values just beside it rounding to the nearer neighbour).
TEST(SafeTensorsFloat16, HalfConversionsAreExactAndRoundToEven) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const auto h = static_cast<uint16_t>(bits);
    const float value = half_bits_to_float(h);
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
      ASSERT_TRUE(std::isnan(value)) << bits;
      ASSERT_TRUE(std::isnan(half_bits_to_float(float_to_half_bits(value)))) << bits;
      continue;
    }
    ASSERT_EQ(float_to_half_bits(value), h) << bits;
    const uint16_t magnitude = h & 0x7fff;
    if (magnitude >= 0x7bff) continue;  // the next one up is inf (handled below)
    const float next = half_bits_to_float(static_cast<uint16_t>(h + 1));
    const float midpoint = (value + next) / 2;  // exact: 12 significant bits at most
    const uint16_t even = (h & 1) ? static_cast<uint16_t>(h + 1) : h;
    ASSERT_EQ(float_to_half_bits(midpoint), even) << bits;
    ASSERT_EQ(float_to_half_bits(std::nextafter(midpoint, 0.0f)), h) << bits;
    ASSERT_EQ(float_to_half_bits(std::nextafter(midpoint, 2 * midpoint)), h + 1) << bits;
  }
  EXPECT_EQ(float_to_half_bits(65519.99f), 0x7bff);
  EXPECT_EQ(float_to_half_bits(65520.0f), 0x7c00);
  EXPECT_EQ(float_to_half_bits(-1e30f), 0xfc00);
  EXPECT_EQ(float_to_half_bits(0x1p-25f), 0x0000);
  EXPECT_EQ(float_to_half_bits(std::nextafter(0x1p-25f, 1.0f)), 0x0001);
  EXPECT_EQ(float_to_half_bits(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(float_to_half_bits(-0.0f), 0x8000);
}

TEST(SafeTensorsFloat16, BFloat16ConversionsAreExactAndRoundToEven) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const auto b = static_cast<uint16_t>(bits);
    const float value = bfloat16_bits_to_float(b);
    if (std::isnan(value)) {
      ASSERT_TRUE(std::isnan(bfloat16_bits_to_float(float_to_bfloat16_bits(value)))) << bits;
      continue;
    }
    ASSERT_EQ(float_to_bfloat16_bits(value), b) << bits;
    if ((b & 0x7fff) >= 0x7f7f) continue;
    const uint32_t wide = uint32_t(b) << 16;
    const auto midpoint = std::bit_cast<float>(wide | 0x8000u);
    ASSERT_EQ(float_to_bfloat16_bits(midpoint), (b & 1) ? b + 1 : b) << bits;
    ASSERT_EQ(float_to_bfloat16_bits(std::bit_cast<float>(wide | 0x7fffu)), b) << bits;
    ASSERT_EQ(float_to_bfloat16_bits(std::bit_cast<float>(wide | 0x8001u)), b + 1) << bits;
  }
}
