// File plumbing: one-line errors, descriptors, whole-file reads, atomic writes (see files.h).
#include "core/io/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <system_error>

namespace starflow::core::io {

namespace fs = std::filesystem;

FileError::FileError(const std::string& where, std::string_view problem)
    : std::runtime_error(printable(where) + ": " + printable(problem)), problem_(printable(problem)) {}

void fail_file(const fs::path& file, std::string_view problem) { throw FileError(file.string(), problem); }

void fail_file_line(const fs::path& file, int64_t line, std::string_view problem) {
  throw FileError(file.string() + ":" + std::to_string(line), problem);
}

std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

std::string errno_text(int error) { return std::system_category().message(error); }

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

int FileDescriptor::close() {
  const int result = ::close(fd_);
  fd_ = -1;
  return result;
}

std::vector<uint8_t> read_file_bytes(const fs::path& path) {
  FileDescriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file.valid()) fail_file(path, "cannot open for reading: " + errno_text(errno));
  struct stat status {};
  if (::fstat(file.get(), &status) != 0) fail_file(path, "cannot stat: " + errno_text(errno));
  if (!S_ISREG(status.st_mode)) fail_file(path, "not a regular file");
  std::vector<uint8_t> bytes(static_cast<size_t>(status.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t got = ::read(file.get(), bytes.data() + done, bytes.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail_file(path, "read failed: " + errno_text(errno));
    if (got == 0) fail_file(path, "file shrank while being read");
    done += static_cast<size_t>(got);
  }
  return bytes;
}

void write_all(int fd, const void* data, size_t bytes, const fs::path& reported_as) {
  const auto* cursor = static_cast<const uint8_t*>(data);
  while (bytes > 0) {
    const size_t chunk = std::min<size_t>(bytes, size_t(1) << 30);  // Linux caps one write near 2 GiB
    const ssize_t wrote = ::write(fd, cursor, chunk);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote < 0) fail_file(reported_as, "write failed: " + errno_text(errno));
    cursor += wrote;
    bytes -= static_cast<size_t>(wrote);
  }
}

void fsync_file(const fs::path& file, const fs::path& reported_as) {
  FileDescriptor fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) fail_file(reported_as, "cannot reopen '" + file.string() + "' to sync it: " + errno_text(errno));
  if (::fsync(fd.get()) != 0) fail_file(reported_as, "fsync of '" + file.string() + "' failed: " + errno_text(errno));
}

void fsync_parent_directory(const fs::path& target) {
  fs::path parent = target.parent_path();
  if (parent.empty()) parent = ".";
  FileDescriptor directory(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!directory.valid()) fail_file(target, "written, but cannot open its directory to sync: " + errno_text(errno));
  if (::fsync(directory.get()) != 0 && errno != EINVAL)
    fail_file(target, "written, but syncing its directory failed: " + errno_text(errno));
}

fs::path temporary_path_for(const fs::path& target) {
  std::string name = ".";  // appended piecewise: GCC 12 warns falsely (-Wrestrict) on "." + string&&
  name += target.filename().string();
  name += ".tmp.";
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0 && host[0]) {
    name += host;
    name += '.';
  }
  name += std::to_string(::getpid());
  return target.parent_path() / name;
}

void rename_into_place(const fs::path& temporary, const fs::path& target) {
  if (std::rename(temporary.c_str(), target.c_str()) != 0) {
    const int error = errno;
    std::error_code ignored;
    fs::remove(temporary, ignored);
    fail_file(target, "cannot rename '" + temporary.string() + "' into place: " + errno_text(error));
  }
  fsync_parent_directory(target);
}

void commit_temporary(const fs::path& temporary, const fs::path& target) {
  try {
    fsync_file(temporary, target);
  } catch (...) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw;
  }
  rename_into_place(temporary, target);
}

void write_file_atomically(const fs::path& target, std::span<const uint8_t> bytes) {
  TemporaryFile temporary(temporary_path_for(target));
  FileDescriptor fd(::open(temporary.path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) fail_file(target, "cannot create '" + temporary.path().string() + "': " + errno_text(errno));
  write_all(fd.get(), bytes.data(), bytes.size(), target);
  if (::fsync(fd.get()) != 0) fail_file(target, "fsync failed: " + errno_text(errno));
  if (fd.close() != 0) fail_file(target, "close failed: " + errno_text(errno));
  temporary.commit();  // rename_into_place removes it itself if the rename fails
  rename_into_place(temporary.path(), target);
}

void write_file_atomically(const fs::path& target, std::string_view text) {
  write_file_atomically(target, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

TemporaryFile::~TemporaryFile() {
  if (!committed_) ::unlink(path_.c_str());
}

}  // namespace starflow::core::io
