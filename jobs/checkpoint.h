// Checkpoints: one file per checkpoint, written collectively with MPI-IO by every rank, each writing the
// byte ranges it owns; every tensor in its full, unsharded layout, so any TP×DP layout can load any file.
// Layout (little-endian): a 64-byte preamble, the tensors (each 64-byte aligned), the JSON header (config,
// step, data cursor, tensor index with shapes, offsets and CRC-32s), and a 32-byte trailer that
// locates and checksums the header. Written to a temporary name, synced, then renamed: a crash mid-write
// never costs the previous checkpoint. Format details: jobs/CHECKPOINT_FORMAT.md.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace starflow::jobs {

// A run of elements [begin, end) of the flattened global tensor that this rank writes from `data`.
struct CheckpointSlice {
  int64_t begin = 0, end = 0;
  const float* data = nullptr;
};

// One tensor as this rank holds it: global shape, and the element range [begin, end) of the flattened
// global tensor that `data` holds. Replicated tensors (every rank holds the same range) are written by one
// rank only; sharded ones by every rank that holds a part. Or, when `slices` is non-empty or `data` is
// null, exactly the runs in `slices` (none: this rank writes nothing of it) — the caller then makes the
// ranks' slices cover the tensor exactly once (tensor-parallel shards, ZeRO-1 parts). Every rank lists every
// tensor, with the same names and shapes, in the same order. Stored as F32.
struct CheckpointTensor {
  std::string name;
  core::Shape shape;
  const float* data = nullptr;
  int64_t begin = 0, end = -1;  // -1: the whole tensor
  bool replicated = true;
  std::vector<CheckpointSlice> slices = {};
};

struct CheckpointInfo {
  std::string path;
  int64_t step = 0;
  nlohmann::json header;  // everything: "step", "meta" (caller's JSON), "tensors" [...]
};

// Collective over comm. `meta` is the caller's JSON (config, data cursor, layout, ...; the trainer's random
// draws are keyed by seed, position and rank, so there is no generator state to save). Writes
// <dir>/ckpt_<step, 8 digits>.sfckpt atomically and then keeps only the newest `keep` checkpoints in dir
// (keep <= 0: keep all). Throws the same parallel::AgreedError on every rank on failure.
std::string write_checkpoint(MPI_Comm comm, const std::string& dir, int64_t step, const nlohmann::json& meta,
                             const std::vector<CheckpointTensor>& tensors, int keep);

// Reads a checkpoint; open() and read() are collective over comm (rank 0 reads the header and broadcasts it).
class CheckpointReader {
 public:
  CheckpointReader(MPI_Comm comm, const std::string& path);
  ~CheckpointReader();
  CheckpointReader(const CheckpointReader&) = delete;
  CheckpointReader& operator=(const CheckpointReader&) = delete;

  const CheckpointInfo& info() const { return info_; }
  bool has(const std::string& name) const;
  core::Shape shape(const std::string& name) const;  // throws "<path>: no tensor 'NAME'"
  // Elements [begin, end) of the flattened tensor into out; a whole-tensor read verifies its CRC-32.
  // Independent (not collective): ranks may read different tensors.
  void read(const std::string& name, float* out, int64_t begin = 0, int64_t end = -1) const;

 private:
  const nlohmann::json& entry(const std::string& name) const;
  MPI_Comm comm_;
  MPI_File file_ = MPI_FILE_NULL;
  CheckpointInfo info_;
};

// Header of one checkpoint file without MPI (for `starflow inspect` and discovery); validates the trailer
// and the header checksum. Throws "<path>: ..." for anything that is not a complete checkpoint.
CheckpointInfo read_checkpoint_header(const std::string& path);

// The newest complete checkpoint in dir ("" when there is none); incomplete or corrupt files are skipped
// (temporary files never match the final name pattern).
std::string newest_checkpoint(const std::string& dir);

// The newest file in dir named like a checkpoint, complete or not ("" when there is none). Resuming opens
// this one, so that a damaged newest checkpoint is an error naming it rather than a silent step back.
std::string newest_checkpoint_file(const std::string& dir);

}  // namespace starflow::jobs
