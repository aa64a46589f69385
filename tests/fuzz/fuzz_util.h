// Shared by the fuzz targets (libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer; tools/fuzz.sh runs
// them): the input as a file where the parser takes a path, and the rule every parser of outside bytes keeps,
// checked on every rejection: bad input gets a clear one-line error naming the file and the problem, thrown
// as a std::runtime_error or std::invalid_argument (core::io::FileError and the project's other errors derive
// from them). Anything else (a crash, a sanitizer report, a leak, a hang, another exception type such as
// nlohmann::json's or std::bad_alloc, a message with a newline or without the file's name) stops the fuzzer
// with the input that caused it.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <typeinfo>

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

[[noreturn]] inline void bad_rejection(const char* why, const std::exception& e) {
  std::fprintf(stderr, "BAD REJECTION (%s): %s: [%s]\n", why, typeid(e).name(), e.what());
  std::abort();
}

inline void check_message(const std::exception& e, const std::string& name) {
  const std::string what = e.what();
  if (what.find('\n') != std::string::npos || what.find('\r') != std::string::npos)
    bad_rejection("the message is not one line", e);
  if (what.find(name) == std::string::npos) bad_rejection(("the message does not name " + name).c_str(), e);
}

// Runs the parser on the input held as `name` (the file's path, or the name the parser was given for it).
template <class Parse>
void expect_clean_rejection(const std::string& name, Parse&& parse) {
  try {
    parse();
  } catch (const std::runtime_error& e) {
    check_message(e, name);
  } catch (const std::invalid_argument& e) {
    check_message(e, name);
  } catch (const std::exception& e) {
    bad_rejection("not a std::runtime_error or std::invalid_argument", e);
  }
}

}  // namespace starflow::fuzz
