// MappedFile: mmap(PROT_READ, MAP_PRIVATE) of the whole file; the descriptor is closed once mapped.
#include "core/io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "core/io/files.h"

namespace starflow::core::io {

namespace {

uint64_t page_size() {
  static const uint64_t size = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace

MappedFile::MappedFile(const std::filesystem::path& path) {
  FileDescriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file.valid()) fail_file(path, "cannot open for reading: " + errno_text(errno));
  struct stat status {};
  if (::fstat(file.get(), &status) != 0) fail_file(path, "cannot stat: " + errno_text(errno));
  if (!S_ISREG(status.st_mode)) fail_file(path, "not a regular file");
  size_ = static_cast<uint64_t>(status.st_size);
  if (size_ == 0) return;  // mmap refuses length 0; an empty file has nothing to map
  void* address = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, file.get(), 0);
  if (address == MAP_FAILED) fail_file(path, "cannot map into memory: " + errno_text(errno));
  data_ = static_cast<const std::byte*>(address);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

void MappedFile::will_need(uint64_t offset, uint64_t bytes) const {
  if (data_ == nullptr || bytes == 0) return;
  const uint64_t begin = offset / page_size() * page_size();
  ::madvise(const_cast<std::byte*>(data_) + begin, offset + bytes - begin, MADV_WILLNEED);  // only a hint
}

void MappedFile::release(uint64_t offset, uint64_t bytes) const {
  if (data_ == nullptr) return;
  // Only pages wholly inside the range: a page shared with a neighbouring tensor may still be wanted.
  const uint64_t page = page_size();
  const uint64_t begin = (offset + page - 1) / page * page, end = (offset + bytes) / page * page;
  if (end > begin) ::madvise(const_cast<std::byte*>(data_) + begin, end - begin, MADV_DONTNEED);
}

}  // namespace starflow::core::io
