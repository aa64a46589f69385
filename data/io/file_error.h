// One-line errors for bad input files: "<file>: <problem>". Shared by the readers in data/io so that every
// message has the same shape and never spans lines, whatever bytes the file put into it.
#pragma once
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace starflow::data {

// The error every data/io reader throws for a bad or unreadable file.
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

// "system error text" for errno values, e.g. "No such file or directory".
std::string errno_text(int error);

}  // namespace starflow::data
