// T5Tokenizer over libsentencepiece. The rule of HF's slow T5Tokenizer (sp.encode, keep L−1 pieces, append
// </s>, pad with 0) is reproduced exactly on the golden rows (tests/golden/data/t5_tokenizer.safetensors).
#include "core/models/t5_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "core/io/files.h"

namespace starflow::core {

struct T5Tokenizer::Processor {
  sentencepiece::SentencePieceProcessor sp;
};

T5Tokenizer::T5Tokenizer(const std::string& spiece_model) : path_(spiece_model), sp_(std::make_unique<Processor>()) {
  // SentencePiece's own message for a missing file is about its internal stream; say it plainly first.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(spiece_model, ec))
    io::fail_file(spiece_model, "SentencePiece model not found (T5's spiece.model)");
  const sentencepiece::util::Status status = sp_->sp.Load(spiece_model);
  if (!status.ok())
    io::fail_file(spiece_model, "not a readable SentencePiece model: " + io::printable(status.ToString()));
  // T5 checkpoints index their embedding rows with these ids; another model's ids would silently mis-embed.
  if (sp_->sp.pad_id() != kPadId || sp_->sp.eos_id() != kEosId || sp_->sp.unk_id() != kUnkId)
    io::fail_file(spiece_model, "special ids <pad> " + std::to_string(sp_->sp.pad_id()) + ", </s> " +
                                    std::to_string(sp_->sp.eos_id()) + ", <unk> " + std::to_string(sp_->sp.unk_id()) +
                                    "; T5 needs 0, 1, 2");
}

T5Tokenizer::~T5Tokenizer() = default;
T5Tokenizer::T5Tokenizer(T5Tokenizer&&) noexcept = default;
T5Tokenizer& T5Tokenizer::operator=(T5Tokenizer&&) noexcept = default;

int64_t T5Tokenizer::vocab_size() const { return sp_->sp.GetPieceSize(); }

std::vector<int64_t> T5Tokenizer::pieces(const std::string& text) const {
  std::vector<int> ids;
  const sentencepiece::util::Status status = sp_->sp.Encode(text, &ids);
  if (!status.ok()) io::fail_file(path_, "cannot encode a caption: " + io::printable(status.ToString()));
  return {ids.begin(), ids.end()};
}

T5Tokens T5Tokenizer::encode(std::span<const std::string> captions, int64_t L) const {
  if (L < 1) throw std::invalid_argument("T5Tokenizer::encode: length " + std::to_string(L) + " leaves no room for </s>");
  const int64_t N = static_cast<int64_t>(captions.size());
  T5Tokens out{Tensor<int64_t>({N, L}, kPadId), Tensor<int64_t>({N, L}, 0), std::vector<int64_t>(N)};
  for (int64_t r = 0; r < N; ++r) {
    const std::vector<int64_t> ids = pieces(captions[r]);
    // </s> is always kept: truncation drops pieces, never the end of sequence.
    const int64_t kept = std::min<int64_t>(static_cast<int64_t>(ids.size()), L - 1);
    int64_t* row = out.ids.ptr() + r * L;
    std::copy_n(ids.begin(), kept, row);
    row[kept] = kEosId;
    std::fill_n(out.mask.ptr() + r * L, kept + 1, int64_t(1));
    out.lengths[r] = kept + 1;
  }
  return out;
}

}  // namespace starflow::core
