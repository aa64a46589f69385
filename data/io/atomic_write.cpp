// Temporary-file-and-rename writes for the data/io writers.
#include "data/io/atomic_write.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <system_error>

#include "data/io/file_error.h"

namespace starflow::data {

namespace fs = std::filesystem;

namespace {

// Owns a POSIX file descriptor.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now so that a failing close (deferred write errors on some file systems) is seen.
  int close() {
    const int result = ::close(fd_);
    fd_ = -1;
    return result;
  }

 private:
  int fd_;
};

// Renames `temporary` over `target`, then fsyncs the directory so that the rename itself survives a
// crash. Some file systems cannot fsync a directory (EINVAL); that is not an error.
void rename_into_place(const fs::path& temporary, const fs::path& target) {
  if (std::rename(temporary.c_str(), target.c_str()) != 0) {
    const int error = errno;
    std::error_code ignored;
    fs::remove(temporary, ignored);
    fail_file(target, "cannot rename the temporary file " + temporary.string() + " into place: " + errno_text(error));
  }
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  FileDescriptor directory(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (directory.get() >= 0 && ::fsync(directory.get()) != 0 && errno != EINVAL)
    fail_file(target, "fsync of the directory failed: " + errno_text(errno));
}

}  // namespace

fs::path temporary_path_for(const fs::path& target) {
  std::string name = ".";  // appended piecewise: GCC 12 warns falsely (-Wrestrict) on "." + string&&
  name += target.filename().string();
  name += ".tmp.";
  name += std::to_string(::getpid());
  return target.parent_path() / name;
}

void commit_temporary(const fs::path& temporary, const fs::path& target) {
  auto give_up = [&](const std::string& what, int error) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    fail_file(target, what + ": " + errno_text(error));
  };
  {
    FileDescriptor fd(::open(temporary.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) give_up("cannot reopen the temporary file " + temporary.string(), errno);
    if (::fsync(fd.get()) != 0) give_up("fsync failed", errno);
  }
  rename_into_place(temporary, target);
}

void write_file_atomically(const fs::path& target, std::span<const uint8_t> bytes) {
  const fs::path temporary = temporary_path_for(target);
  FileDescriptor fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) fail_file(target, "cannot create " + temporary.string() + ": " + errno_text(errno));
  auto give_up = [&](const std::string& what, int error) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    fail_file(target, what + ": " + errno_text(error));
  };
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd.get(), bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) give_up("write failed", errno);
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) give_up("fsync failed", errno);
  if (fd.close() != 0) give_up("close failed", errno);
  rename_into_place(temporary, target);
}

}  // namespace starflow::data
