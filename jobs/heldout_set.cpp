#include "jobs/heldout_set.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/random.h"
#include "data/shard_dataset.h"
#include "jobs/synthetic_latents.h"

namespace starflow::jobs {
namespace {

// Keys of the held-out set's draws, independent of the training seed: runs with other seeds evaluate the same
// samples with the same noise.
constexpr uint64_t kHeldoutSeed = 0x68656c646f7574ULL;  // "heldout"
constexpr int64_t kSyntheticStart = int64_t(1) << 40;

// noise_std noise on every sample, keyed by its global index in the held-out set.
void add_noise(TrainBatch& b, int64_t first_index, double noise_std) {
  const int64_t per_sample = static_cast<int64_t>(b.latents.size()) / std::max<int64_t>(b.size, 1);
  for (int64_t s = 0; s < b.size; ++s) {
    // splitmix64's output for a counter is a well-mixed key (adjacent raw seeds would give shifted streams).
    core::Rng rng(core::Rng(kHeldoutSeed + static_cast<uint64_t>(first_index + s)).next_u64());
    for (int64_t i = s * per_sample; i < (s + 1) * per_sample; ++i) b.latents[i] += float(noise_std * rng.normal());
  }
}

}  // namespace

HeldoutSet heldout_from_shards(const std::vector<std::string>& paths, const std::string& location,
                               const TrainConfig& cfg, int dp_rank, int dp_size) {
  if (paths.empty()) throw std::runtime_error(location + ": no latent shards found (eval_data)");
  data::ShardDatasetOptions options;
  options.seed = kHeldoutSeed;
  options.dp_rank = dp_rank;
  options.dp_size = dp_size;
  options.batch_per_rank = cfg.batch_size / dp_size;
  data::ShardDataset dataset(paths, options);
  const int64_t batches = std::min<int64_t>(cfg.eval_batches, dataset.steps_per_epoch());
  if (batches < 1)
    throw std::runtime_error(location + ": " + std::to_string(dataset.num_samples()) +
                             " held-out samples are fewer than one global batch of " + std::to_string(cfg.batch_size));
  HeldoutSet set;
  set.global_batch = dataset.global_batch();
  data::Cursor cursor;
  for (int64_t k = 0; k < batches; ++k) {
    data::Batch read = dataset.read_batch(cursor);
    cursor = read.next_cursor;
    TrainBatch b;
    b.size = options.batch_per_rank;
    b.position = k * set.global_batch;
    b.latents = std::move(read.samples.latents.data);  // a stored posterior's mean: its σ is not drawn here
    b.labels = std::move(read.samples.labels);
    b.text = std::move(read.samples.text_embeddings.data);
    add_noise(b, b.position + dp_rank * b.size, cfg.noise_std);
    set.batches.push_back(std::move(b));
  }
  set.total_samples = batches * set.global_batch;
  set.description = std::to_string(set.total_samples) + " held-out samples of " + location;
  return set;
}

HeldoutSet heldout_synthetic(const TrainConfig& cfg, int dp_rank, int dp_size) {
  const auto& m = cfg.model;
  SyntheticLatents stream(m.in_channels, m.img_size, m.conditional() ? m.txt_dim - 1 : 0, cfg.seed, cfg.batch_size,
                          dp_rank, dp_size);
  stream.restore({{"position", kSyntheticStart}});
  HeldoutSet set;
  set.global_batch = cfg.batch_size;
  for (int64_t k = 0; k < cfg.eval_batches; ++k) {
    TrainBatch b = stream.next();
    b.position = k * set.global_batch;
    add_noise(b, b.position + dp_rank * b.size, cfg.noise_std);
    set.batches.push_back(std::move(b));
  }
  set.total_samples = cfg.eval_batches * set.global_batch;
  set.description = std::to_string(set.total_samples) + " held-out synthetic samples";
  return set;
}

std::pair<std::vector<std::string>, std::vector<std::string>> split_heldout_shards(std::vector<std::string> paths,
                                                                                   double fraction,
                                                                                   const std::string& location) {
  if (paths.size() < 2)
    throw std::runtime_error(location + ": eval_fraction needs at least 2 shards (found " +
                             std::to_string(paths.size()) + "); give eval_data a held-out shard directory instead");
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> train, heldout;
  const auto n = static_cast<int64_t>(paths.size());
  for (int64_t i = 0; i < n; ++i) {
    const bool out = std::floor(double(i + 1) * fraction) > std::floor(double(i) * fraction);
    (out ? heldout : train).push_back(paths[i]);
  }
  if (heldout.empty()) heldout.push_back(train.back()), train.pop_back();
  if (train.empty()) train.push_back(heldout.front()), heldout.erase(heldout.begin());
  return {train, heldout};
}

}  // namespace starflow::jobs
