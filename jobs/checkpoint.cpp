// Checkpoint reading (header without MPI, tensors through MPI-IO), discovery, and the format's shared pieces
// (format in jobs/CHECKPOINT_FORMAT.md; the writer is jobs/checkpoint_writer.cpp).
#include "jobs/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>
#include <set>
#include <stdexcept>

#include "core/io/files.h"
#include "jobs/checkpoint_format.h"
#include "parallel/error_agreement.h"
#include "parallel/mpi_check.h"

namespace starflow::jobs {

using namespace checkpoint_format;
using parallel::agree_on_error;

namespace checkpoint_format {

// zlib's crc32 runs at ~3.6 GB/s per core: a third of a 256 MB checkpoint's write time on one core, hence the
// blocks on all threads, combined with crc32_combine.
uint32_t crc_of(const void* data, uint64_t bytes) {
  constexpr uint64_t kBlock = 4ull << 20;
  const auto* p = static_cast<const Bytef*>(data);
  const int64_t blocks = static_cast<int64_t>((bytes + kBlock - 1) / kBlock);
  std::vector<uLong> part(static_cast<size_t>(blocks));
#pragma omp parallel for schedule(static) if (blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    const uint64_t begin = static_cast<uint64_t>(b) * kBlock;
    part[b] = crc32(crc32(0L, Z_NULL, 0), p + begin, static_cast<uInt>(std::min(kBlock, bytes - begin)));
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  for (int64_t b = 0; b < blocks; ++b) {
    const uint64_t begin = static_cast<uint64_t>(b) * kBlock;
    crc = crc32_combine(crc, part[b], static_cast<z_off_t>(std::min(kBlock, bytes - begin)));
  }
  return static_cast<uint32_t>(crc);
}

std::string file_name(int64_t step) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "ckpt_%08lld.sfckpt", static_cast<long long>(step));
  return buf;
}

std::vector<std::pair<int64_t, std::filesystem::path>> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::filesystem::path>> found;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return found;
  static const std::regex pattern(R"(ckpt_(\d+)\.sfckpt)");
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, pattern)) found.emplace_back(std::stoll(m[1]), e.path());
  }
  std::sort(found.rbegin(), found.rend());
  return found;
}

}  // namespace checkpoint_format

namespace {

// The tensor index and the fields its readers (inspect, CheckpointReader, resume) take as given: checked here
// once, so that a damaged header fails in one line naming the file, never as a JSON exception or a read
// outside the tensors' bytes [kPreambleBytes, data_end).
void check_index(const std::string& path, const nlohmann::json& h, uint64_t data_end) {
  const auto bad = [&](const std::string& problem) {
    throw std::runtime_error(path + ": checkpoint header: " + core::io::printable(problem) + " (corrupt)");
  };
  const auto field = [](const nlohmann::json& object, const char* key) {
    const auto it = object.find(key);
    return it == object.end() ? nullptr : &*it;
  };
  const nlohmann::json* step = field(h, "step");
  if (!step || !step->is_number_integer()) bad("no integer 'step'");
  const nlohmann::json* meta = field(h, "meta");  // the writer's caller's JSON (the trainer's: an object)
  if (!meta || !(meta->is_object() || meta->is_null())) bad("no 'meta' object");
  const nlohmann::json* tensors = field(h, "tensors");
  if (!tensors || !tensors->is_array()) bad("no 'tensors' list");
  std::set<std::string> names;
  for (const nlohmann::json& t : *tensors) {
    const nlohmann::json* name = t.is_object() ? field(t, "name") : nullptr;
    if (!name || !name->is_string()) bad("a 'tensors' entry without a string 'name'");
    const std::string label = "tensor '" + name->get<std::string>() + "'";
    if (!names.insert(name->get<std::string>()).second) bad(label + " is listed twice");
    const nlohmann::json *dtype = field(t, "dtype"), *shape = field(t, "shape"), *offset = field(t, "offset"),
                         *bytes = field(t, "bytes"), *crc = field(t, "crc32");
    if (!dtype || *dtype != "F32") bad(label + ": dtype is not \"F32\"");
    if (!shape || !shape->is_array()) bad(label + ": no 'shape' list");
    int64_t count = 1;  // multiplied in core::numel's order, so that it cannot overflow there either
    for (const nlohmann::json& d : *shape)
      if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t(INT64_MAX) ||
          __builtin_mul_overflow(count, d.get<int64_t>(), &count) || count > int64_t(data_end / sizeof(float)))
        bad(label + ": 'shape' is not a list of sizes that fit the file");
    if (!offset || !offset->is_number_unsigned() || !bytes || !bytes->is_number_unsigned() || !crc || !crc->is_string())
      bad(label + ": no unsigned 'offset' and 'bytes' and string 'crc32'");
    const uint64_t begin = offset->get<uint64_t>(), size = bytes->get<uint64_t>();
    if (size != static_cast<uint64_t>(count) * sizeof(float))
      bad(label + ": 'bytes' " + std::to_string(size) + " does not match its F32 shape");
    if (begin < kPreambleBytes || begin > data_end || size > data_end - begin)
      bad(label + ": bytes [" + std::to_string(begin) + ", +" + std::to_string(size) + ") are outside the tensor data [" +
          std::to_string(kPreambleBytes) + ", " + std::to_string(data_end) + ")");
  }
}

nlohmann::json parse_header(const std::string& path, const std::string& text, uint64_t data_end) {
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": checkpoint header is not valid JSON");
  }
  if (!h.is_object() || !h.contains("format") || h["format"] != "starflow-checkpoint")
    throw std::runtime_error(path + ": not a starflow checkpoint (header format)");
  if (!h.contains("version") || h["version"] != kVersion)
    throw std::runtime_error(path + ": checkpoint version " +
                             (h.contains("version") && h["version"].is_number() ? h["version"].dump() : "(none)") +
                             " is not supported (expected " + std::to_string(kVersion) + ")");
  check_index(path, h, data_end);
  return h;
}

// Locates and checks the header from the last kTrailerBytes of a file of `size` bytes.
void decode_trailer(const std::string& path, const unsigned char* trailer, uint64_t size, uint64_t& offset,
                    uint64_t& length, uint32_t& crc) {
  if (std::memcmp(trailer, kTrailerMagic, 8) != 0)
    throw std::runtime_error(path + ": not a complete starflow checkpoint (no trailer: truncated or not a checkpoint)");
  std::memcpy(&offset, trailer + 8, 8);
  std::memcpy(&length, trailer + 16, 8);
  std::memcpy(&crc, trailer + 24, 4);
  if (offset < kPreambleBytes || offset > size - kTrailerBytes || length != size - kTrailerBytes - offset)
    throw std::runtime_error(path + ": checkpoint trailer points outside the file (corrupt)");
}

}  // namespace

CheckpointInfo read_checkpoint_header(const std::string& path) {
  const core::io::FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw std::runtime_error(path + ": cannot open: " + core::io::errno_text(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw std::runtime_error(path + ": cannot stat: " + core::io::errno_text(errno));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  auto read_at = [&](void* dst, uint64_t n, uint64_t off) {
    const ssize_t got = ::pread(fd.get(), dst, n, static_cast<off_t>(off));
    if (got != static_cast<ssize_t>(n)) throw std::runtime_error(path + ": read failed (truncated checkpoint)");
  };
  if (size < kPreambleBytes + kTrailerBytes)
    throw std::runtime_error(path + ": too short to be a checkpoint (" + std::to_string(size) + " bytes)");
  unsigned char preamble[16], trailer[kTrailerBytes];
  read_at(preamble, 16, 0);
  if (std::memcmp(preamble, kPreambleMagic, 16) != 0)
    throw std::runtime_error(path + ": not a starflow checkpoint (bad magic)");
  read_at(trailer, kTrailerBytes, size - kTrailerBytes);
  uint64_t offset = 0, length = 0;
  uint32_t crc = 0;
  decode_trailer(path, trailer, size, offset, length, crc);
  std::string text(length, '\0');
  read_at(text.data(), length, offset);
  if (crc_of(text.data(), length) != crc) throw std::runtime_error(path + ": checkpoint header checksum mismatch (corrupt)");
  CheckpointInfo info;
  info.path = path;
  info.header = parse_header(path, text, offset);
  info.step = info.header.at("step").get<int64_t>();
  return info;
}

std::string newest_checkpoint(const std::string& dir) {
  for (const auto& [step, path] : list_checkpoints(dir)) {
    try {
      read_checkpoint_header(path.string());
      return path.string();
    } catch (const std::exception&) {
      // incomplete or corrupt: an older one may still be good
    }
  }
  return "";
}

std::string newest_checkpoint_file(const std::string& dir) {
  const auto found = list_checkpoints(dir);
  return found.empty() ? "" : found.front().second.string();
}

CheckpointReader::CheckpointReader(MPI_Comm comm, const std::string& path) : comm_(comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  std::string error, text;
  if (rank == 0) {
    try {
      info_ = read_checkpoint_header(path);
      text = info_.header.dump();
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  agree_on_error(comm, error);
  uint64_t len = text.size();
  MPI_Bcast(&len, 1, MPI_UINT64_T, 0, comm);
  text.resize(len);
  MPI_Bcast(text.data(), static_cast<int>(len), MPI_CHAR, 0, comm);
  if (rank != 0) {
    info_.path = path;
    info_.header = nlohmann::json::parse(text);
    info_.step = info_.header.at("step").get<int64_t>();
  }
  try {
    mpiCheck(MPI_File_open(comm, path.c_str(), MPI_MODE_RDONLY, MPI_INFO_NULL, &file_));
  } catch (const std::exception& e) {
    error = path + ": " + e.what();
  }
  agree_on_error(comm, error);
}

CheckpointReader::~CheckpointReader() {
  if (file_ != MPI_FILE_NULL) MPI_File_close(&file_);
}

const nlohmann::json& CheckpointReader::entry(const std::string& name) const {
  for (const auto& t : info_.header.at("tensors"))
    if (t.at("name") == name) return t;
  throw std::runtime_error(info_.path + ": no tensor '" + name + "'");
}

bool CheckpointReader::has(const std::string& name) const {
  for (const auto& t : info_.header.at("tensors"))
    if (t.at("name") == name) return true;
  return false;
}

core::Shape CheckpointReader::shape(const std::string& name) const { return entry(name).at("shape").get<core::Shape>(); }

void CheckpointReader::read(const std::string& name, float* out, int64_t begin, int64_t end) const {
  const nlohmann::json& t = entry(name);
  const int64_t n = core::numel(t.at("shape").get<core::Shape>());
  if (end < 0) end = n;
  if (begin < 0 || end > n || begin > end)
    throw std::runtime_error(info_.path + ": tensor '" + name + "': range out of bounds");
  uint64_t offset = t.at("offset").get<uint64_t>() + static_cast<uint64_t>(begin) * sizeof(float);
  uint64_t bytes = static_cast<uint64_t>(end - begin) * sizeof(float);
  char* dst = reinterpret_cast<char*>(out);
  while (bytes > 0) {
    const uint64_t chunk = std::min(bytes, kChunkBytes);
    MPI_Status st;
    mpiCheck(MPI_File_read_at(file_, static_cast<MPI_Offset>(offset), dst, static_cast<int>(chunk), MPI_BYTE, &st));
    int got = 0;
    MPI_Get_count(&st, MPI_BYTE, &got);
    if (static_cast<uint64_t>(got) != chunk)
      throw std::runtime_error(info_.path + ": tensor '" + name + "': truncated data");
    offset += chunk;
    dst += chunk;
    bytes -= chunk;
  }
  if (begin == 0 && end == n) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "%08x", crc_of(out, static_cast<uint64_t>(n) * sizeof(float)));
    if (t.at("crc32").get<std::string>() != hex)
      throw std::runtime_error(info_.path + ": tensor '" + name + "': checksum mismatch (corrupt data)");
  }
}

}  // namespace starflow::jobs
