// One-line file errors for the data/io readers.
#include "data/io/file_error.h"

#include <system_error>

namespace starflow::data {

FileError::FileError(const std::string& where, std::string_view problem)
    : std::runtime_error(printable(where) + ": " + printable(problem)), problem_(printable(problem)) {}

void fail_file(const std::filesystem::path& file, std::string_view problem) { throw FileError(file.string(), problem); }

void fail_file_line(const std::filesystem::path& file, int64_t line, std::string_view problem) {
  throw FileError(file.string() + ":" + std::to_string(line), problem);
}

std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

std::string errno_text(int error) { return std::system_category().message(error); }

}  // namespace starflow::data
