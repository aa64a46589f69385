// File plumbing shared by every reader and writer of the project (safetensors, images, shards, checkpoints,
// manifests): one-line errors naming the file, an owned descriptor, whole-file reads, and writes that appear
// complete or not at all (temporary name in the same directory, fsync of the file, rename, fsync of the
// directory, so that neither a crash nor a full disk leaves a half file or destroys the previous one).
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace starflow::core::io {

// "<file>: <problem>" on one line, whatever bytes the file put into the problem.
class FileError : public std::runtime_error {
 public:
  FileError(const std::string& where, std::string_view problem);
  // The message without the file name: for reports that already list files by name.
  const std::string& problem() const { return problem_; }

 private:
  std::string problem_;
};

[[noreturn]] void fail_file(const std::filesystem::path& file, std::string_view problem);
// "<file>:<line>: <problem>", for text inputs such as captions and labels lists.
[[noreturn]] void fail_file_line(const std::filesystem::path& file, int64_t line, std::string_view problem);

// Control characters (newlines, tabs, escapes) replaced by '?': text taken from a file stays on one line.
std::string printable(std::string_view text);

// The system's text for an errno value, e.g. "No such file or directory".
std::string errno_text(int error);

// Owns a POSIX file descriptor (closed on destruction). close() is explicit where its result matters: some
// file systems (NFS, Lustre) report deferred write errors only there.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd = -1) : fd_(fd) {}
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileDescriptor& operator=(FileDescriptor&& other) noexcept;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor();
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int close();  // 0 or -1 with errno set, as ::close

 private:
  int fd_;
};

// The whole file; FileError for a missing, unreadable or non-regular file ("cannot open for reading: ...").
std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path);

// Writes all of `bytes` (retrying short writes and EINTR); FileError naming `reported_as` on failure.
void write_all(int fd, const void* data, size_t bytes, const std::filesystem::path& reported_as);

// fsync of a file written through another descriptor (a library such as HDF5 that closed its own).
void fsync_file(const std::filesystem::path& file, const std::filesystem::path& reported_as);

// fsync of the directory holding `target`, so that a rename into it survives a crash. File systems that
// cannot sync a directory (EINVAL) are accepted; any other failure is a FileError naming `target`.
void fsync_parent_directory(const std::filesystem::path& target);

// "<dir>/.<name>.tmp.<host>.<pid>": hidden, unique per process even across the nodes of a shared file system,
// and on the target's file system (so that the rename is atomic).
std::filesystem::path temporary_path_for(const std::filesystem::path& target);

// Renames a complete, synced `temporary` over `target` and syncs the directory; on failure removes
// `temporary` and throws a FileError naming `target`.
void rename_into_place(const std::filesystem::path& temporary, const std::filesystem::path& target);

// fsync of `temporary`, then rename_into_place.
void commit_temporary(const std::filesystem::path& temporary, const std::filesystem::path& target);

// Writes `bytes` to `target` through a temporary file (the sequence above).
void write_file_atomically(const std::filesystem::path& target, std::span<const uint8_t> bytes);
void write_file_atomically(const std::filesystem::path& target, std::string_view text);

// Removes a temporary file on destruction unless commit() was called: a writer that throws leaves no debris.
class TemporaryFile {
 public:
  explicit TemporaryFile(std::filesystem::path path) : path_(std::move(path)) {}
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;
  ~TemporaryFile();
  const std::filesystem::path& path() const { return path_; }
  void commit() { committed_ = true; }

 private:
  std::filesystem::path path_;
  bool committed_ = false;
};

}  // namespace starflow::core::io
