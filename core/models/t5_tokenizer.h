// T5's tokenizer (flan-t5's spiece.model) as Hugging Face's slow T5Tokenizer applies it with
// padding="max_length", truncation=True: SentencePiece ids, cut to L−1, then </s>, then <pad> up to L.
// SentencePiece itself (normalization, unigram segmentation) is the library's; this class adds T5's rule.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace starflow::core {

struct T5Tokens {
  Tensor<int64_t> ids;           // [N, L]: pieces, </s>, then <pad> (0)
  Tensor<int64_t> mask;          // [N, L]: 1 on the pieces and </s>, 0 on the padding
  std::vector<int64_t> lengths;  // [N]: tokens per row including </s> (1 ≤ length ≤ L); the mask is a prefix
};

class T5Tokenizer {
 public:
  static constexpr int64_t kPadId = 0;
  static constexpr int64_t kEosId = 1;
  static constexpr int64_t kUnkId = 2;

  // Loads a SentencePiece model with T5's special ids (<pad> 0, </s> 1, <unk> 2). Throws io::FileError
  // "<path>: ..." (one line) when the file is missing, is not a SentencePiece model, or has other special ids.
  explicit T5Tokenizer(const std::string& spiece_model);
  ~T5Tokenizer();
  T5Tokenizer(T5Tokenizer&&) noexcept;
  T5Tokenizer& operator=(T5Tokenizer&&) noexcept;

  const std::string& path() const { return path_; }
  int64_t vocab_size() const;  // pieces of the SentencePiece model (the T5 checkpoint's rows add 100 sentinels)

  // SentencePiece's ids of one text: no </s>, no truncation.
  std::vector<int64_t> pieces(const std::string& text) const;

  // Every caption → ids[:L−1] + [</s>], right-padded with <pad> to L (L ≥ 1). Literal special-token text such
  // as "</s>" inside a caption is encoded as ordinary characters, as raw SentencePiece does (HF's from_pretrained
  // tokenizers split it out first; captions never contain it).
  T5Tokens encode(std::span<const std::string> captions, int64_t L) const;

 private:
  struct Processor;  // the SentencePiece processor, kept out of this header
  std::string path_;
  std::unique_ptr<Processor> sp_;
};

}  // namespace starflow::core
