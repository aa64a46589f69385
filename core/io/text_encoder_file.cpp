// open_text_encoder: a T5 folder or a word-vector file, from what the path holds.
#include "core/io/text_encoder_file.h"

#include <filesystem>

#include "core/io/files.h"
#include "core/io/word_vectors.h"
#include "core/models/t5_text_encoder.h"
#include "core/models/word_vector_encoder.h"

namespace starflow::core::io {

std::unique_ptr<TextEncoder> open_text_encoder(const std::string& path, int64_t L) {
  namespace fs = std::filesystem;
  if (is_t5_folder(path)) return std::make_unique<T5TextEncoder>(path, L);
  std::error_code ec;
  if (fs::is_directory(path, ec))
    fail_file(path, "not a text encoder: a T5 folder holds config.json and spiece.model");
  auto vectors = std::make_shared<const WordVectors>(WordVectors::load(path));
  return std::make_unique<WordVectorTextEncoder>(std::move(vectors), L, fs::path(path).stem().string());
}

}  // namespace starflow::core::io
