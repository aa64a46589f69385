// Files written by data/io appear complete or not at all: each is written under a temporary name in the
// same directory, flushed, and renamed over the target, so a crash or a full disk never leaves a
// half-written PNG or IDX file, and never destroys the previous one.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>

namespace starflow::data {

// "<dir>/.<name>.tmp.<pid>": hidden, unique per process, on the target's file system (rename stays atomic).
std::filesystem::path temporary_path_for(const std::filesystem::path& target);

// fsyncs `temporary`, renames it to `target` and fsyncs the directory; on failure removes `temporary`
// and throws a FileError naming `target`.
void commit_temporary(const std::filesystem::path& temporary, const std::filesystem::path& target);

// Writes `bytes` to `target` through a temporary file.
void write_file_atomically(const std::filesystem::path& target, std::span<const uint8_t> bytes);

}  // namespace starflow::data
