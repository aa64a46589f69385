// Shared by the fuzz targets (libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer; tools/fuzz.sh runs
// them): the input as a file where the parser takes a path, and the rule every parser of outside bytes keeps,
// checked on every rejection: bad input is a std::exception whose message is one line. Anything else (a crash,
// a sanitizer report, another exception, a multi-line message) stops the fuzzer with the input that caused it.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

namespace starflow::fuzz {

// A per-process scratch folder (several fuzzers may run at once), removed at exit.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("starflow-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(std::filesystem::temp_directory_path() / ("starflow-fuzz-" + std::to_string(::getpid())), ec);
    });
    return d;
  }();
  return dir;
}

// Writes the input to scratch()/name and returns the path.
inline std::string as_file(const uint8_t* data, size_t size, const std::string& name) {
  const std::filesystem::path path = scratch() / name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path.string();
}

// Runs the parser; a rejection must be one line.
template <class Parse>
void expect_one_line_rejection(Parse&& parse) {
  try {
    parse();
  } catch (const std::exception& e) {
    const std::string what = e.what();
    if (what.empty() || what.find('\n') != std::string::npos) {
      std::fprintf(stderr, "rejection is not one line: [%s]\n", what.c_str());
      std::abort();
    }
  }
}

}  // namespace starflow::fuzz
