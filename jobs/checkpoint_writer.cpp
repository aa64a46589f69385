// write_checkpoint: every rank writes the byte ranges it owns of one file with collective MPI-IO; rank 0 adds
// the header and trailer; the file is synced under a temporary name and renamed (jobs/CHECKPOINT_FORMAT.md).
// Each step ends with the ranks agreeing on its errors, so that a failure on one rank stops them all at the same
// point with the same message, and the previous checkpoint is never touched.
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "core/io/files.h"
#include "jobs/checkpoint.h"
#include "jobs/checkpoint_format.h"
#include "parallel/error_agreement.h"
#include "parallel/mpi_check.h"

namespace starflow::jobs {

using namespace checkpoint_format;
using parallel::agree_on_error;

namespace {

namespace fs = std::filesystem;

// The tensor index: offsets from names and shapes alone, so every rank computes the same one.
struct Index {
  nlohmann::json entries = nlohmann::json::array();
  std::vector<uint64_t> offsets;
  uint64_t header_offset = 0;
};

Index index_tensors(const std::vector<CheckpointTensor>& tensors) {
  Index index;
  uint64_t at = kPreambleBytes;
  for (const CheckpointTensor& t : tensors) {
    const uint64_t bytes = static_cast<uint64_t>(core::numel(t.shape)) * sizeof(float);
    index.offsets.push_back(at);
    index.entries.push_back({{"name", t.name}, {"dtype", "F32"}, {"shape", t.shape}, {"offset", at}, {"bytes", bytes}});
    at = align_up(at + bytes);
  }
  index.header_offset = at;
  return index;
}

struct Piece {  // a contiguous byte range this rank writes
  uint64_t tensor, begin_elem, elems, file_offset;
  const float* data;
  uint32_t crc;
};

// This rank's pieces: replicated tensors round-robin over the ranks, shards by whoever holds them. A slice out
// of range sets `error`.
std::vector<Piece> owned_pieces(const std::vector<CheckpointTensor>& tensors, const Index& index, int rank, int size,
                                std::string& error) {
  std::vector<Piece> pieces;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const CheckpointTensor& t = tensors[i];
    const int64_t n = core::numel(t.shape);
    auto add = [&](int64_t begin, int64_t end, const float* data) {
      if (begin < 0 || end > n || begin > end) error = "tensor '" + t.name + "': slice out of range";
      else if (end > begin)
        pieces.push_back({i, static_cast<uint64_t>(begin), static_cast<uint64_t>(end - begin),
                          index.offsets[i] + static_cast<uint64_t>(begin) * sizeof(float), data,
                          crc_of(data, static_cast<uint64_t>(end - begin) * sizeof(float))});
    };
    if (!t.slices.empty() || t.data == nullptr) {
      for (const CheckpointSlice& s : t.slices) add(s.begin, s.end, s.data);
      continue;
    }
    if (t.replicated && static_cast<int>(i % size) != rank) continue;
    add(t.begin, t.end < 0 ? n : t.end, t.data);
  }
  return pieces;
}

// Writes the pieces with collective calls: an hindexed file view per round, the same number of rounds on every
// rank. Each round goes straight from the tensors' memory (a memory datatype of the chunks' absolute addresses
// against a file view of their offsets): no packing copy, no zero-filled buffer to fault in.
// Open MPI's ompio can report a failed write (ENOSPC on a full file system) on stderr and still return
// MPI_SUCCESS with fewer bytes written: the status's count is what was written.
void check_written(MPI_Status& status, uint64_t expected) {
  int count = 0;
  mpiCheck(MPI_Get_count(&status, MPI_BYTE, &count));
  if (static_cast<uint64_t>(count) != expected)
    throw std::runtime_error("wrote " + std::to_string(count) + " of " + std::to_string(expected) +
                             " bytes: the file system is full or failing");
}

void write_pieces(MPI_File fh, MPI_Comm comm, std::vector<Piece> pieces) {
  std::sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) { return a.file_offset < b.file_offset; });
  // Chunks of at most kChunkBytes (MPI counts are ints), grouped into rounds of at most kChunkBytes.
  struct Chunk {
    uint64_t offset, bytes;
    const char* src;
  };
  std::vector<std::vector<Chunk>> rounds(1);
  uint64_t in_round = 0;
  for (const Piece& p : pieces) {
    const char* src = reinterpret_cast<const char*>(p.data);
    for (uint64_t done = 0, total = p.elems * sizeof(float); done < total;) {
      const uint64_t n = std::min(total - done, kChunkBytes - in_round);
      rounds.back().push_back({p.file_offset + done, n, src + done});
      done += n;
      in_round += n;
      if (in_round == kChunkBytes) rounds.emplace_back(), in_round = 0;
    }
  }
  int mine = static_cast<int>(rounds.size()), all = 0;
  mpiCheck(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MAX, comm));
  rounds.resize(all);
  for (const auto& round : rounds) {
    std::vector<int> lengths;
    std::vector<MPI_Aint> displacements, addresses;
    for (const Chunk& c : round) {
      lengths.push_back(static_cast<int>(c.bytes));
      displacements.push_back(static_cast<MPI_Aint>(c.offset));
      MPI_Aint address;
      mpiCheck(MPI_Get_address(c.src, &address));
      addresses.push_back(address);
    }
    MPI_Datatype filetype = MPI_BYTE, memtype = MPI_BYTE;
    if (!round.empty()) {
      const int n = static_cast<int>(round.size());
      mpiCheck(MPI_Type_create_hindexed(n, lengths.data(), displacements.data(), MPI_BYTE, &filetype));
      mpiCheck(MPI_Type_commit(&filetype));
      mpiCheck(MPI_Type_create_hindexed(n, lengths.data(), addresses.data(), MPI_BYTE, &memtype));
      mpiCheck(MPI_Type_commit(&memtype));
    }
    mpiCheck(MPI_File_set_view(fh, 0, MPI_BYTE, filetype, "native", MPI_INFO_NULL));
    MPI_Status status;
    mpiCheck(MPI_File_write_all(fh, MPI_BOTTOM, round.empty() ? 0 : 1, memtype, &status));
    if (filetype != MPI_BYTE) MPI_Type_free(&filetype);
    if (memtype != MPI_BYTE) MPI_Type_free(&memtype);
    uint64_t expected = 0;
    for (const Chunk& c : round) expected += c.bytes;
    check_written(status, expected);
  }
  mpiCheck(MPI_File_set_view(fh, 0, MPI_BYTE, MPI_BYTE, "native", MPI_INFO_NULL));
}

// Collective; on rank 0 the pieces' CRCs (gathered from every rank) combined per tensor in element order into
// whole-tensor CRCs, written into the index. Throws on rank 0 when the ranks' pieces do not cover a tensor
// exactly once.
void merge_crcs(MPI_Comm comm, int rank, int size, const std::vector<Piece>& pieces,
                const std::vector<CheckpointTensor>& tensors, Index& index) {
  std::vector<uint64_t> mine;
  for (const Piece& p : pieces) mine.insert(mine.end(), {p.tensor, p.begin_elem, p.elems, p.crc});
  int count = static_cast<int>(mine.size());
  std::vector<int> counts(size), displs(size);
  MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, comm);
  std::vector<uint64_t> all;
  if (rank == 0) {
    int total = 0;
    for (int r = 0; r < size; ++r) displs[r] = total, total += counts[r];
    all.resize(total);
  }
  MPI_Gatherv(mine.data(), count, MPI_UINT64_T, all.data(), counts.data(), displs.data(), MPI_UINT64_T, 0, comm);
  if (rank != 0) return;
  std::vector<std::vector<std::array<uint64_t, 3>>> per_tensor(tensors.size());
  for (size_t i = 0; i + 4 <= all.size(); i += 4) per_tensor[all[i]].push_back({all[i + 1], all[i + 2], all[i + 3]});
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto& ps = per_tensor[i];
    std::sort(ps.begin(), ps.end());
    uLong crc = crc32(0L, Z_NULL, 0);
    uint64_t covered = 0;
    for (const auto& p : ps) {
      if (p[0] != covered) break;
      crc = crc32_combine(crc, static_cast<uLong>(p[2]), static_cast<z_off_t>(p[1] * sizeof(float)));
      covered += p[1];
    }
    if (covered != static_cast<uint64_t>(core::numel(tensors[i].shape)))
      throw std::runtime_error("tensor '" + tensors[i].name + "': the ranks' slices do not cover it exactly");
    char hex[16];
    std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(crc));
    index.entries[i]["crc32"] = hex;
  }
}

// Rank 0: the preamble, the JSON header after the last tensor, and the trailer that locates and checksums it.
// Returns the file's whole size.
uint64_t write_header_and_trailer(MPI_File fh, int64_t step, int world_size, const nlohmann::json& meta,
                              const Index& index) {
  char when[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  const nlohmann::json header = {{"format", "starflow-checkpoint"}, {"version", kVersion}, {"step", step},
                                 {"created", when}, {"world_size", world_size}, {"meta", meta},
                                 {"tensors", index.entries}};
  const std::string text = header.dump(1);
  std::vector<unsigned char> preamble(kPreambleBytes, 0), trailer(kTrailerBytes, 0);
  std::memcpy(preamble.data(), kPreambleMagic, sizeof kPreambleMagic);
  std::memcpy(preamble.data() + 16, &kVersion, 4);
  const uint64_t length = text.size();
  const uint32_t crc = crc_of(text.data(), length);
  std::memcpy(trailer.data(), kTrailerMagic, 8);
  std::memcpy(trailer.data() + 8, &index.header_offset, 8);
  std::memcpy(trailer.data() + 16, &length, 8);
  std::memcpy(trailer.data() + 24, &crc, 4);
  MPI_Status st;
  mpiCheck(MPI_File_write_at(fh, 0, preamble.data(), kPreambleBytes, MPI_BYTE, &st));
  check_written(st, kPreambleBytes);
  mpiCheck(MPI_File_write_at(fh, index.header_offset, text.data(), static_cast<int>(length), MPI_BYTE, &st));
  check_written(st, length);
  mpiCheck(MPI_File_write_at(fh, index.header_offset + length, trailer.data(), kTrailerBytes, MPI_BYTE, &st));
  check_written(st, kTrailerBytes);
  return index.header_offset + length + kTrailerBytes;
}

// Keeps the newest `keep` complete-named checkpoints; never touches anything else in the directory.
void prune_checkpoints(const std::string& dir, int keep) {
  if (keep <= 0) return;
  const auto found = list_checkpoints(dir);
  std::error_code ec;
  for (size_t i = static_cast<size_t>(keep); i < found.size(); ++i) fs::remove(found[i].second, ec);
}

// Runs `step` and returns its error text (prefixed with `where`), "" when it succeeded.
template <class Step>
std::string attempt(const std::string& where, Step&& step) {
  try {
    step();
    return "";
  } catch (const std::exception& e) {
    return where.empty() ? std::string(e.what()) : where + ": " + e.what();
  }
}

}  // namespace

std::string write_checkpoint(MPI_Comm comm, const std::string& dir, int64_t step, const nlohmann::json& meta,
                             const std::vector<CheckpointTensor>& tensors, int keep) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const std::string final_path = (fs::path(dir) / file_name(step)).string();
  const std::string tmp_path = final_path + ".tmp";

  agree_on_error(comm, rank == 0 ? attempt(dir, [&] { fs::create_directories(dir); }) : "");

  Index index = index_tensors(tensors);
  std::string error;
  const std::vector<Piece> pieces = owned_pieces(tensors, index, rank, size, error);
  agree_on_error(comm, error);

  // A write that fails (a full file system) leaves no partial file behind to hold the space: the previous
  // checkpoints are untouched, and the next attempt starts with the room they leave.
  struct RemoveUnlessPublished {
    const std::string& path;
    bool rank0, published = false;
    ~RemoveUnlessPublished() {
      std::error_code ec;
      if (rank0 && !published) fs::remove(path, ec);
    }
  } cleanup{tmp_path, rank == 0};
  MPI_File fh = MPI_FILE_NULL;
  agree_on_error(comm, attempt(tmp_path, [&] {
    mpiCheck(MPI_File_open(comm, tmp_path.c_str(), MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh));
  }));
  agree_on_error(comm, attempt(tmp_path, [&] {
    mpiCheck(MPI_File_set_size(fh, 0));
    write_pieces(fh, comm, pieces);
  }));

  error = attempt(tmp_path, [&] { merge_crcs(comm, rank, size, pieces, tensors, index); });
  uint64_t file_bytes = 0;
  if (rank == 0 && error.empty())
    error = attempt(tmp_path, [&] { file_bytes = write_header_and_trailer(fh, step, size, meta, index); });
  agree_on_error(comm, error);

  agree_on_error(comm, attempt(tmp_path, [&] {
    mpiCheck(MPI_File_sync(fh));
    mpiCheck(MPI_File_close(&fh));
  }));

  // Published by rank 0 once every rank's bytes are synced: rename, then fsync of the directory (the rename
  // itself must survive a crash before older checkpoints are pruned).
  if (rank == 0) {
    // The last line of defence before a checkpoint gets its final name (and older ones are pruned): the file
    // holds every byte the index and trailer promise.
    error = attempt(tmp_path, [&] {
      const uint64_t have = fs::file_size(tmp_path);
      if (have != file_bytes)
        throw std::runtime_error("the file has " + std::to_string(have) + " bytes, " + std::to_string(file_bytes) +
                                 " were written: the file system is full or failing");
    });
    if (error.empty()) error = attempt("", [&] { core::io::rename_into_place(tmp_path, final_path); });
    cleanup.published = error.empty();
    if (error.empty()) prune_checkpoints(dir, keep);
  }
  agree_on_error(comm, error);
  return final_path;
}

}  // namespace starflow::jobs
