// The word vectors' binary cache (core/io/word_vectors.cpp, <file>.starflow-cache): the input is the cache
// beside a small valid JSON, its source stamp (size, mtime; bytes 8..24) set to the JSON's so that the reader
// takes it seriously. A damaged cache is only a cache: load() must rebuild it from the JSON, never fail.
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/io/word_vectors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  using starflow::core::io::WordVectors;
  const fs::path json = starflow::fuzz::scratch() / "vectors.json";
  static const bool ready = [&] {
    std::ofstream(json) << R"({"dimensions": 2, "size": 3, "vectors": {"a": [1, 2, 2.2, 0], "b": [0.5, -1, 1.1, 1], "cat": [3e-5, 7, 7, 2]}})";
    return true;
  }();
  (void)ready;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (bytes.size() >= 24) {
    const uint64_t source_size = fs::file_size(json);
    const int64_t source_mtime = static_cast<int64_t>(fs::last_write_time(json).time_since_epoch().count());
    std::memcpy(bytes.data() + 8, &source_size, 8);
    std::memcpy(bytes.data() + 16, &source_mtime, 8);
  }
  std::ofstream(WordVectors::cache_path_for(json), std::ios::binary | std::ios::trunc) << bytes;
  try {
    const WordVectors vectors = WordVectors::load(json, starflow::core::io::WordVectorCache::kUse);
    for (int64_t i = 0; i < vectors.size(); ++i) (void)vectors.find(vectors.word(i));
    if (!vectors.loaded_from_cache() && (vectors.size() != 3 || vectors.find("cat").size() != 2)) {
      std::fprintf(stderr, "BAD LOAD: the JSON's words were not read after a damaged cache\n");
      std::abort();
    }
  } catch (const std::exception& e) {
    starflow::fuzz::bad_rejection("a damaged cache must be rebuilt from the JSON, not fail the load", e);
  }
  return 0;
}
