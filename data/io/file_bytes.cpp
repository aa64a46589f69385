// Whole-file reads through POSIX calls, so that every failure carries errno's reason.
#include "data/io/file_bytes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "data/io/file_error.h"

namespace starflow::data {

std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_file(path, "cannot open: " + errno_text(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) fail_file(path, "cannot stat: " + errno_text(errno));
  if (!S_ISREG(info.st_mode)) fail_file(path, "not a regular file");
  std::vector<uint8_t> bytes(static_cast<size_t>(info.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_file(path, "read failed: " + errno_text(errno));
    if (n == 0) fail_file(path, "shrank while being read");
    done += static_cast<size_t>(n);
  }
  return bytes;
}

}  // namespace starflow::data
