// T5Tokenizer against the upstream goldens (tests/golden/data/t5_tokenizer.safetensors): every row of tok.L32.* and
// tok.L128.* exactly; the special-token-literal rows follow raw SentencePiece (the documented choice, README §2.5);
// T5's rule on edge lengths; one-line errors for a missing or corrupt model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/io/safetensors.h"
#include "core/models/t5_tokenizer.h"
#include "tests/golden/golden_fixtures.h"

using namespace starflow::core;

namespace {

std::string spiece() { return starflow::testing::golden_fixture("t5_tiny_spiece.model"); }

std::vector<int64_t> read_i64(const io::SafeTensorsFile& file, const std::string& name) {
  std::vector<int64_t> out(static_cast<size_t>(numel(file.info(name).shape)));
  std::memcpy(out.data(), file.raw(name).data(), out.size() * sizeof(int64_t));
  return out;
}

std::vector<std::string> caption_texts(const std::string& json) {
  std::vector<std::string> texts;
  for (const auto& entry : nlohmann::json::parse(json)) texts.push_back(entry["text"].get<std::string>());
  return texts;
}

std::vector<int64_t> row(const Tensor<int64_t>& t, int64_t r) {
  const int64_t L = t.shape[1];
  return {t.data.begin() + r * L, t.data.begin() + (r + 1) * L};
}

}  // namespace

TEST(T5Tokenizer, EveryGoldenRowAtBothLengths) {
  const io::SafeTensorsFile golden = io::SafeTensorsFile::open(starflow::testing::golden_fixture("t5_tokenizer.safetensors"));
  const std::vector<std::string> captions = caption_texts(golden.metadata_value("captions"));
  ASSERT_EQ(captions.size(), 13u);
  const T5Tokenizer tokenizer(spiece());
  EXPECT_EQ(tokenizer.vocab_size(), 384);
  for (const int64_t L : {32, 128}) {
    const std::string prefix = "tok.L" + std::to_string(L);
    const T5Tokens tokens = tokenizer.encode(captions, L);
    const std::vector<int64_t> want_ids = read_i64(golden, prefix + ".input_ids");
    const std::vector<int64_t> want_mask = read_i64(golden, prefix + ".attention_mask");
    for (int64_t r = 0; r < 13; ++r) {
      const std::vector<int64_t> w_ids(want_ids.begin() + r * L, want_ids.begin() + (r + 1) * L);
      const std::vector<int64_t> w_mask(want_mask.begin() + r * L, want_mask.begin() + (r + 1) * L);
      EXPECT_EQ(row(tokens.ids, r), w_ids) << prefix << " row " << r << ": " << captions[r];
      EXPECT_EQ(row(tokens.mask, r), w_mask) << prefix << " row " << r;
      int64_t ones = 0;
      for (int64_t m : w_mask) ones += m;
      EXPECT_EQ(tokens.lengths[r], ones) << prefix << " row " << r;
    }
  }
}

// Literal "</s>", "<pad>", "<extra_id_0>" in a caption are ordinary characters to SentencePiece and to this
// tokenizer; HF's from_pretrained tokenizer splits them out first (tok_special.*). The rows must equal the raw
// SentencePiece ids the fixture records, and differ from HF's.
TEST(T5Tokenizer, SpecialTokenTextIsEncodedAsRawSentencePiece) {
  const io::SafeTensorsFile golden = io::SafeTensorsFile::open(starflow::testing::golden_fixture("t5_tokenizer.safetensors"));
  const std::vector<std::string> captions = caption_texts(golden.metadata_value("special_literal_captions"));
  const auto raw = nlohmann::json::parse(golden.metadata_value("special_literal_raw_spm_ids"));
  const T5Tokenizer tokenizer(spiece());
  const int64_t L = 32;
  const T5Tokens tokens = tokenizer.encode(captions, L);
  const std::vector<int64_t> hf = read_i64(golden, "tok_special.L32.input_ids");
  for (size_t r = 0; r < captions.size(); ++r) {
    std::vector<int64_t> expected = raw[r].get<std::vector<int64_t>>();  // sp.encode(text) + [</s>]
    expected.resize(std::min<size_t>(expected.size(), L), 0);
    expected.back() = T5Tokenizer::kEosId;
    std::vector<int64_t> ours = row(tokens.ids, static_cast<int64_t>(r));
    ours.resize(expected.size());
    EXPECT_EQ(ours, expected) << captions[r];
    EXPECT_NE(row(tokens.ids, static_cast<int64_t>(r)), std::vector<int64_t>(hf.begin() + r * L, hf.begin() + (r + 1) * L))
        << "row " << r << " now equals HF's special-token splitting: update README §2.5's note";
  }
}

TEST(T5Tokenizer, EndOfSequenceIsAlwaysKept) {
  const T5Tokenizer tokenizer(spiece());
  const std::string text = "software license and the program";
  const std::vector<int64_t> pieces = tokenizer.pieces(text);
  ASSERT_GT(pieces.size(), 3u);
  const std::vector<std::string> captions = {text, ""};
  // L = 1: only </s>; the empty caption is [</s>, <pad>...], STARFlow's null condition.
  T5Tokens one = tokenizer.encode(captions, 1);
  EXPECT_EQ(one.ids.data, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(one.lengths, (std::vector<int64_t>{1, 1}));
  T5Tokens three = tokenizer.encode(captions, 3);
  EXPECT_EQ(row(three.ids, 0), (std::vector<int64_t>{pieces[0], pieces[1], 1}));
  EXPECT_EQ(row(three.ids, 1), (std::vector<int64_t>{1, 0, 0}));
  EXPECT_EQ(row(three.mask, 1), (std::vector<int64_t>{1, 0, 0}));
  EXPECT_THROW(tokenizer.encode(captions, 0), std::invalid_argument);
}

TEST(T5Tokenizer, MissingOrCorruptModelIsOneLineNamingTheFile) {
  const std::string dir = testing::TempDir() + "/starflow_t5_tok_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string missing = dir + "/no_such_spiece.model", corrupt = dir + "/corrupt_spiece.model";
  std::ofstream(corrupt) << "this is not a protobuf model\n";
  for (const std::string& path : {missing, corrupt}) {
    try {
      T5Tokenizer tokenizer(path);
      ADD_FAILURE() << "no error for " << path;
    } catch (const std::runtime_error& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  }
  std::filesystem::remove_all(dir);
}
