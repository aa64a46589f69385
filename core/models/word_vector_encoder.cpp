// Tokeniser, word-vector caption encoder and one-hot class encoder.
#include "core/models/word_vector_encoder.h"

#include <algorithm>
#include <stdexcept>

namespace starflow::core {

namespace {

// Decodes one UTF-8 sequence at text[i]; returns the code point and its length, or length 0 for a
// malformed sequence (treated as a separator byte).
struct CodePoint {
  uint32_t value;
  size_t length;
};

CodePoint decode_utf8(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return {lead, 1};
  // The lead byte's high bits give the sequence length; its low bits start the value.
  const size_t length = (lead & 0xE0) == 0xC0 ? 2 : (lead & 0xF0) == 0xE0 ? 3 : (lead & 0xF8) == 0xF0 ? 4 : 0;
  if (length == 0) return {0, 0};
  uint32_t value = lead & (0x7Fu >> length);
  if (i + length > text.size()) return {0, 0};
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return {0, 0};
    value = (value << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr uint32_t kSmallest[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (value < kSmallest[length] || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return {0, 0};
  return {value, length};
}

bool is_word_character(uint32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  if (c < 0xC0 || c == 0xD7 || c == 0xF7) return false;  // Latin-1 controls, punctuation, × and ÷
  if (c >= 0x2000 && c <= 0x206F) return false;          // General Punctuation: ’ “ ” – — … and spaces
  return true;
}

// Latin-1 letters U+00C0..U+00FF folded to ASCII: the word-vector vocabulary is ASCII (wink's has no
// accented word at all), so "Côte" must become "cote" to be found. Two-letter folds for æ, ß, þ.
// clang-format off
constexpr const char* kLatin1Fold[64] = {
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",   // À..Ï
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "ss", // Ð..ß (× unused)
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",   // à..ï
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "y",  // ð..ÿ (÷ unused)
};
// clang-format on

void append_lowercase(std::string& out, uint32_t c, std::string_view original) {
  if (c >= 'A' && c <= 'Z')
    out.push_back(static_cast<char>(c - 'A' + 'a'));
  else if (c >= 0xC0 && c <= 0xFF)
    out.append(kLatin1Fold[c - 0xC0]);
  else
    out.append(original);
}

}  // namespace

std::vector<std::string> tokenize(std::string_view caption) {
  std::vector<std::string> tokens;
  std::string current;
  size_t i = 0;
  while (i < caption.size()) {
    const CodePoint c = decode_utf8(caption, i);
    const size_t length = c.length == 0 ? 1 : c.length;
    if (c.length != 0 && is_word_character(c.value)) {
      append_lowercase(current, c.value, caption.substr(i, length));
    } else if (!current.empty()) {
      tokens.push_back(std::move(current));
      current.clear();
    }
    i += length;
  }
  if (!current.empty()) tokens.push_back(std::move(current));
  return tokens;
}

WordVectorTextEncoder::WordVectorTextEncoder(std::shared_ptr<const io::WordVectors> vectors, int64_t max_tokens,
                                             std::string name)
    : vectors_(std::move(vectors)), max_tokens_(max_tokens), name_(std::move(name)) {
  if (!vectors_) throw std::invalid_argument("text encoder: no word vectors");
  if (max_tokens_ <= 0) throw std::invalid_argument("text encoder: the token count L must be positive");
}

TextEmbeddings WordVectorTextEncoder::encode(std::span<const std::string> captions, TextEncodeStats* stats) const {
  const int64_t n = static_cast<int64_t>(captions.size()), length = max_tokens_, dims = dimensions();
  TextEmbeddings out{Tensor<float>(Shape{n, length, dims}), Tensor<uint8_t>(Shape{n, length})};
  TextEncodeStats local;
  for (int64_t i = 0; i < n; ++i) {
    int64_t position = 0;
    bool truncated = false;
    for (const std::string& token : tokenize(captions[static_cast<size_t>(i)])) {
      ++local.tokens;
      const std::span<const float> vector = vectors_->find(token);
      if (vector.empty()) {
        ++local.unknown_tokens;
        continue;
      }
      if (position == length) {
        truncated = true;
        continue;  // keep counting unknown tokens for the stats
      }
      std::copy(vector.begin(), vector.end(), out.embeddings.ptr() + (i * length + position) * dims);
      out.mask.data[static_cast<size_t>(i * length + position)] = 1;
      ++position;
    }
    local.truncated_captions += truncated ? 1 : 0;
    local.null_captions += position == 0 ? 1 : 0;
  }
  if (stats) {
    stats->tokens += local.tokens;
    stats->unknown_tokens += local.unknown_tokens;
    stats->truncated_captions += local.truncated_captions;
    stats->null_captions += local.null_captions;
  }
  return out;
}

}  // namespace starflow::core
