// The training view of a set of shards: one deterministic permutation of all samples per (seed, epoch),
// cut into global batches of dp_size × batch_per_rank, each data-parallel rank reading its own slice.
// A Cursor {epoch, position} names the next global batch; it is the same on every rank, so one copy in
// the checkpoint resumes all of them, even with a different dp_size or batch size.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "data/latent_shard.h"

namespace starflow::data {

struct Cursor {
  int64_t epoch = 0;
  int64_t position = 0;  // samples of this epoch's permutation consumed by all ranks together

  std::string to_string() const;                 // "epoch=3 position=2048"
  static Cursor parse(const std::string& text);  // inverse of to_string; throws std::invalid_argument
  friend bool operator==(const Cursor&, const Cursor&) = default;
};

struct ShardDatasetOptions {
  uint64_t seed = 0;
  int64_t dp_rank = 0;
  int64_t dp_size = 1;
  int64_t batch_per_rank = 1;
  bool with_captions = false;   // fill SampleBatch::captions (when every shard has them)
  int64_t max_open_shards = 64; // least recently used shards beyond this are closed
};

struct Batch {
  Cursor cursor;       // where this batch starts
  Cursor next_cursor;  // where the one after it starts: the cursor to checkpoint once this batch is trained on
  SampleBatch samples; // this rank's batch_per_rank samples, in permutation order
};

// Partition (see FORMAT.md, "Reading for training"): the global batch at position p is permutation entries
// [p, p + G), G = dp_size × batch_per_rank, and rank r takes the contiguous slice [p + r·B, p + (r+1)·B).
// An epoch ends when fewer than G entries remain; that tail is dropped, so every rank takes the same number
// of steps. The permutation changes every epoch, so the dropped samples differ from epoch to epoch.
//
// Not thread-safe: one thread reads (the prefetcher's). The const members may be called from others.
class ShardDataset {
 public:
  ShardDataset(std::vector<std::string> shard_paths, ShardDatasetOptions options);
  ~ShardDataset();
  ShardDataset(ShardDataset&&) noexcept;
  ShardDataset& operator=(ShardDataset&&) noexcept;

  const ShardDatasetOptions& options() const { return options_; }
  const ShardHeader& header() const { return header_; }  // common to all shards; num_samples is the total
  int64_t num_samples() const { return header_.num_samples; }
  const std::vector<std::string>& shard_paths() const { return paths_; }
  int64_t shard_size(size_t shard) const { return offsets_[shard + 1] - offsets_[shard]; }
  int64_t global_batch() const { return options_.dp_size * options_.batch_per_rank; }
  int64_t steps_per_epoch() const { return num_samples() / global_batch(); }

  // The order epoch `epoch` visits the global sample indices (shards concatenated in the order given):
  // Fisher–Yates driven by core::Rng seeded from (seed, epoch).
  std::vector<int64_t> permutation(int64_t epoch) const;
  // `cursor` if a whole global batch starts there, else the start of the next epoch.
  Cursor normalize(Cursor cursor) const;
  // Where the global batch after the one at `cursor` starts (normalized).
  Cursor advance(const Cursor& cursor) const;
  // Global index -> (shard, index inside the shard).
  std::pair<size_t, int64_t> locate(int64_t global_index) const;

  // This rank's global sample indices for the batch at `cursor`.
  std::vector<int64_t> batch_indices(const Cursor& cursor);
  Batch read_batch(const Cursor& cursor);
  // Any global indices, in the given order.
  SampleBatch read_samples(std::span<const int64_t> global_indices);

 private:
  const std::vector<int64_t>& order(int64_t epoch);  // permutation(epoch), cached for the current epoch
  const LatentShardReader& reader(size_t shard);     // opens on demand, keeps at most max_open_shards

  ShardDatasetOptions options_;
  std::vector<std::string> paths_;
  std::vector<int64_t> offsets_;  // offsets_[s] = global index of shard s's first sample; back() = total
  ShardHeader header_;
  bool captions_ = false;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> cached_order_;
  std::vector<std::unique_ptr<LatentShardReader>> open_;  // per shard, null when closed
  std::vector<uint64_t> last_used_;
  uint64_t clock_ = 0;
  int64_t open_count_ = 0;
};

// Shard files named by `location`: a directory (its *.h5 files), a glob pattern, or one file. Sorted by
// name, temporary files of unfinished writers excluded. Throws std::runtime_error if none are found.
std::vector<std::string> find_shards(const std::string& location);

}  // namespace starflow::data
