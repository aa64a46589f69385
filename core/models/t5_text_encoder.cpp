// T5TextEncoder: tokenizer, then the encoder, rows at their own lengths.
#include "core/models/t5_text_encoder.h"

#include <filesystem>
#include <stdexcept>

namespace starflow::core {

namespace fs = std::filesystem;

bool is_t5_folder(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::exists(fs::path(path) / "config.json", ec) &&
         fs::exists(fs::path(path) / "spiece.model", ec);
}

T5TextEncoder::T5TextEncoder(const std::string& folder, int64_t L)
    : name_(fs::path(folder).lexically_normal().filename().string()),
      L_(L),
      tokenizer_((fs::path(folder) / "spiece.model").string()),
      encoder_(load_t5_encoder<CpuBackend<float>>(folder)) {
  if (L_ < 1) throw std::invalid_argument(folder + ": the text length must be at least 1");
  if (name_.empty() || name_ == ".") name_ = fs::absolute(folder).lexically_normal().filename().string();
}

TextEmbeddings T5TextEncoder::encode(std::span<const std::string> captions) {
  const T5Tokens tokens = tokenizer_.encode(captions, L_);
  const int64_t N = static_cast<int64_t>(captions.size()), E = dimensions();
  TextEmbeddings out{Tensor<float>(Shape{N, L_, E}), Tensor<uint8_t>(Shape{N, L_})};
  if (N == 0) return out;
  encoder_.encode(tokens.ids.ptr(), tokens.lengths.data(), N, L_, out.embeddings.ptr());
  for (int64_t i = 0; i < N * L_; ++i) out.mask.data[static_cast<size_t>(i)] = tokens.mask.data[static_cast<size_t>(i)] != 0;
  return out;
}

}  // namespace starflow::core
