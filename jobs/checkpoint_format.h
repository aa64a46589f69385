// The checkpoint file's fixed parts (jobs/CHECKPOINT_FORMAT.md), shared by the writer (checkpoint_writer.cpp)
// and the reader (checkpoint.cpp): preamble and trailer layout, the CRC-32 both sides compute, file names.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace starflow::jobs::checkpoint_format {

constexpr char kPreambleMagic[16] = "STARFLOW-CKPT";  // zero-padded to 16 bytes
constexpr char kTrailerMagic[8] = {'S', 'F', 'C', 'K', 'T', 'R', 'L', '1'};
constexpr uint64_t kPreambleBytes = 64, kTrailerBytes = 32, kAlign = 64;
constexpr uint32_t kVersion = 1;
constexpr uint64_t kChunkBytes = 256ull << 20;  // one MPI call moves at most this much (int counts)

inline uint64_t align_up(uint64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// CRC-32 (zlib's) of a range, in blocks on all threads combined in order.
uint32_t crc_of(const void* data, uint64_t bytes);

// "ckpt_<step, 8 digits>.sfckpt"
std::string file_name(int64_t step);

// The files in dir named like a checkpoint (complete or not; temporaries never match), newest step first.
std::vector<std::pair<int64_t, std::filesystem::path>> list_checkpoints(const std::string& dir);

}  // namespace starflow::jobs::checkpoint_format
