// ShardDataset: permutation, partition and gathering of shuffled samples from many shards.
#include "data/shard_dataset.h"

#include <glob.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <stdexcept>
#include <tuple>

#include "core/random.h"

namespace starflow::data {

namespace {

[[noreturn]] void fail(const std::string& where, const std::string& problem) {
  throw std::runtime_error(where + ": " + problem);
}

// Uniform in [0, bound) without modulo bias: reject the few draws from the incomplete last block.
uint64_t uniform_below(core::Rng& rng, uint64_t bound) {
  const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
  for (;;) {
    const uint64_t draw = rng.next_u64();
    if (draw >= threshold) return draw % bound;
  }
}

bool parse_field(std::string_view text, std::string_view key, int64_t& value) {
  if (!text.starts_with(key) || text.size() <= key.size() || text[key.size()] != '=') return false;
  const char* first = text.data() + key.size() + 1;
  const char* last = text.data() + text.size();
  const auto [end, error] = std::from_chars(first, last, value);
  return error == std::errc() && end == last && value >= 0;
}

}  // namespace

std::string Cursor::to_string() const {
  return "epoch=" + std::to_string(epoch) + " position=" + std::to_string(position);
}

Cursor Cursor::parse(const std::string& text) {
  Cursor cursor;
  const size_t space = text.find(' ');
  if (space == std::string::npos || !parse_field(std::string_view(text).substr(0, space), "epoch", cursor.epoch) ||
      !parse_field(std::string_view(text).substr(space + 1), "position", cursor.position))
    throw std::invalid_argument("invalid data cursor '" + text + "' (expected 'epoch=E position=P')");
  return cursor;
}

ShardDataset::ShardDataset(std::vector<std::string> shard_paths, ShardDatasetOptions options)
    : options_(options), paths_(std::move(shard_paths)) {
  const ShardDatasetOptions& o = options_;
  if (o.dp_size < 1 || o.dp_rank < 0 || o.dp_rank >= o.dp_size)
    throw std::invalid_argument("data-parallel rank " + std::to_string(o.dp_rank) + " is not in [0, " +
                                std::to_string(o.dp_size) + ")");
  if (o.batch_per_rank < 1) throw std::invalid_argument("batch_per_rank must be at least 1");
  if (o.max_open_shards < 1) throw std::invalid_argument("max_open_shards must be at least 1");
  if (paths_.empty()) throw std::runtime_error("no shards given");

  offsets_.assign(1, 0);
  captions_ = true;
  for (const std::string& path : paths_) {
    const ShardHeader shard = read_shard_header(path);
    if (offsets_.size() == 1) header_ = shard;
    else if (!shard.same_content_as(header_))
      fail(path, "holds " + shard.describe() + ", but " + paths_[0] + " holds " + header_.describe());
    captions_ = captions_ && shard.has_captions;
    offsets_.push_back(offsets_.back() + shard.num_samples);
  }
  header_.num_samples = offsets_.back();
  header_.has_captions = captions_;
  if (num_samples() < global_batch())
    throw std::runtime_error(std::to_string(num_samples()) + " samples in " + std::to_string(paths_.size()) +
                             " shards cannot fill one global batch of " + std::to_string(o.dp_size) + " ranks × " +
                             std::to_string(o.batch_per_rank));
  open_.resize(paths_.size());
  last_used_.assign(paths_.size(), 0);
}

ShardDataset::~ShardDataset() = default;
ShardDataset::ShardDataset(ShardDataset&&) noexcept = default;
ShardDataset& ShardDataset::operator=(ShardDataset&&) noexcept = default;

std::vector<int64_t> ShardDataset::permutation(int64_t epoch) const {
  // Hash (seed, epoch) into the generator's state, so neighbouring seeds or epochs do not give
  // overlapping splitmix64 streams.
  const uint64_t seed_key = core::Rng(options_.seed).next_u64();
  core::Rng rng(core::Rng(seed_key ^ static_cast<uint64_t>(epoch)).next_u64());
  std::vector<int64_t> order(static_cast<size_t>(num_samples()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[uniform_below(rng, i)]);
  return order;
}

Cursor ShardDataset::normalize(Cursor cursor) const {
  if (cursor.epoch < 0 || cursor.position < 0)
    throw std::invalid_argument("invalid data cursor '" + cursor.to_string() + "'");
  if (cursor.position + global_batch() > num_samples()) return {cursor.epoch + 1, 0};
  return cursor;
}

Cursor ShardDataset::advance(const Cursor& cursor) const {
  const Cursor start = normalize(cursor);
  return normalize({start.epoch, start.position + global_batch()});
}

std::pair<size_t, int64_t> ShardDataset::locate(int64_t global_index) const {
  if (global_index < 0 || global_index >= num_samples())
    throw std::out_of_range("sample " + std::to_string(global_index) + " is outside the dataset's " +
                            std::to_string(num_samples()));
  // The last shard whose first index is <= global_index; empty shards share an offset and are skipped.
  const auto next = std::upper_bound(offsets_.begin(), offsets_.end(), global_index);
  const auto shard = static_cast<size_t>(next - offsets_.begin() - 1);
  return {shard, global_index - offsets_[shard]};
}

const std::vector<int64_t>& ShardDataset::order(int64_t epoch) {
  if (epoch != cached_epoch_) {
    cached_order_ = permutation(epoch);
    cached_epoch_ = epoch;
  }
  return cached_order_;
}

std::vector<int64_t> ShardDataset::batch_indices(const Cursor& cursor) {
  const Cursor start = normalize(cursor);
  const std::vector<int64_t>& permuted = order(start.epoch);
  const auto first = permuted.begin() + start.position + options_.dp_rank * options_.batch_per_rank;
  return std::vector<int64_t>(first, first + options_.batch_per_rank);
}

Batch ShardDataset::read_batch(const Cursor& cursor) {
  Batch batch;
  batch.cursor = normalize(cursor);
  batch.next_cursor = advance(batch.cursor);
  const std::vector<int64_t> indices = batch_indices(batch.cursor);
  batch.samples = read_samples(indices);
  return batch;
}

SampleBatch ShardDataset::read_samples(std::span<const int64_t> global_indices) {
  const auto count = static_cast<int64_t>(global_indices.size());
  SampleBatch batch = SampleBatch::allocate(header_, count, options_.with_captions);
  // Read in file order, so samples that share a chunk (or a shard) are read together.
  std::vector<std::tuple<size_t, int64_t, int64_t>> requests;  // shard, index in shard, slot in batch
  requests.reserve(global_indices.size());
  for (int64_t slot = 0; slot < count; ++slot) {
    const auto [shard, local] = locate(global_indices[static_cast<size_t>(slot)]);
    requests.emplace_back(shard, local, slot);
  }
  std::sort(requests.begin(), requests.end());
  for (const auto& [shard, local, slot] : requests) reader(shard).read_into(local, 1, batch, slot);
  return batch;
}

const LatentShardReader& ShardDataset::reader(size_t shard) {
  last_used_[shard] = ++clock_;
  if (open_[shard]) return *open_[shard];
  if (open_count_ >= options_.max_open_shards) {
    size_t oldest = shard;
    for (size_t s = 0; s < open_.size(); ++s)
      if (open_[s] && (oldest == shard || last_used_[s] < last_used_[oldest])) oldest = s;
    open_[oldest].reset();
    --open_count_;
  }
  auto opened = std::make_unique<LatentShardReader>(paths_[shard]);
  // The dataset's layout was fixed from the headers when it was built; a shard rewritten since then
  // would silently shift every index after it.
  ShardHeader expected = header_;
  expected.num_samples = shard_size(shard);
  if (!opened->header().same_content_as(expected) || opened->num_samples() != expected.num_samples)
    fail(paths_[shard], "changed since the dataset was opened: now " + opened->header().describe() + ", was " +
                            expected.describe());
  open_[shard] = std::move(opened);
  ++open_count_;
  return *open_[shard];
}

std::vector<std::string> find_shards(const std::string& location) {
  namespace fs = std::filesystem;
  std::vector<std::string> paths;
  const auto is_temporary = [](const std::string& path) {
    return fs::path(path).filename().string().find(".tmp.") != std::string::npos;
  };
  std::error_code error;
  if (fs::is_directory(location, error)) {
    for (const fs::directory_entry& entry : fs::directory_iterator(location, error)) {
      const std::string path = entry.path().string();
      if (entry.is_regular_file() && entry.path().extension() == ".h5" && !is_temporary(path)) paths.push_back(path);
    }
    if (error) fail(location, "cannot list the directory: " + error.message());
  } else if (location.find_first_of("*?[") != std::string::npos) {
    glob_t matches{};
    const int status = ::glob(location.c_str(), 0, nullptr, &matches);
    if (status != 0 && status != GLOB_NOMATCH) {
      ::globfree(&matches);
      fail(location, "cannot expand the pattern");
    }
    for (size_t i = 0; i < matches.gl_pathc; ++i)
      if (!is_temporary(matches.gl_pathv[i])) paths.emplace_back(matches.gl_pathv[i]);
    ::globfree(&matches);
  } else {
    paths.push_back(location);
  }
  if (paths.empty()) fail(location, "no shards (*.h5) found");
  std::sort(paths.begin(), paths.end());
  return paths;
}

}  // namespace starflow::data
