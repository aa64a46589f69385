// A whole file mapped read-only into memory: readers of large weight files (a 9.45 GB flan-t5-xl shard) touch
// only the bytes of the tensors they convert, and nothing is copied until then. Pages of a tensor already
// converted can be handed back, so reading a checkpoint tensor by tensor never holds more than one tensor's
// pages on top of what the caller keeps.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>

namespace starflow::core::io {

class MappedFile {
 public:
  // FileError "<path>: ..." for a missing, unreadable or non-regular file, or one that cannot be mapped.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  uint64_t size() const { return size_; }

  // Hints for the byte range [offset, offset + bytes): read it ahead (before a conversion streams through it),
  // and drop its whole pages from this process once converted (the data stay in the file and the page cache,
  // and a later access maps them again). Neither changes what data() reads.
  void will_need(uint64_t offset, uint64_t bytes) const;
  void release(uint64_t offset, uint64_t bytes) const;

 private:
  const std::byte* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace starflow::core::io
