// Where the tests find the golden fixtures (tests/golden/data/ unless the build sets STARFLOW_GOLDEN_DIR), and a
// one-line failure naming the file when one is missing, instead of a crash further on.
#pragma once
#include <filesystem>
#include <stdexcept>
#include <string>

namespace starflow::testing {

inline std::string golden_fixture(const std::string& file_name) {
  const std::string path = std::string(STARFLOW_GOLDEN_DIR) + "/" + file_name;
  if (!std::filesystem::is_regular_file(path))
    throw std::runtime_error(path + ": golden fixture missing (the fixtures are tracked in tests/golden/data/)");
  return path;
}

}  // namespace starflow::testing
