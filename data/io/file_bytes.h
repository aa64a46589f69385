// Whole-file reads for the decoders, with one-line errors naming the file.
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

namespace starflow::data {

// The file's bytes; throws FileError ("<file>: cannot open: No such file or directory", ...).
std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path);

}  // namespace starflow::data
