// ShardBatches: restore() restarts the prefetch thread at the saved cursor.
#include "jobs/shard_batches.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace starflow::jobs {

ShardBatches::ShardBatches(const std::string& location, uint64_t seed, int64_t global_batch, int dp_rank,
                           int dp_size)
    : ShardBatches(data::find_shards(location), location, seed, global_batch, dp_rank, dp_size) {}

ShardBatches::ShardBatches(std::vector<std::string> paths, const std::string& location, uint64_t seed,
                           int64_t global_batch, int dp_rank, int dp_size)
    : paths_(std::move(paths)) {
  if (paths_.empty()) throw std::runtime_error(location + ": no latent shards found");
  if (global_batch % dp_size != 0)
    throw std::runtime_error("batch_size " + std::to_string(global_batch) + " is not divisible by the " +
                             std::to_string(dp_size) + " data-parallel ranks");
  options_.seed = seed;
  options_.dp_rank = dp_rank;
  options_.dp_size = dp_size;
  options_.batch_per_rank = global_batch / dp_size;
  data::ShardDataset dataset(paths_, options_);
  header_ = dataset.header();
  steps_per_epoch_ = dataset.steps_per_epoch();
  if (steps_per_epoch_ < 1)
    throw std::runtime_error(location + ": " + std::to_string(header_.num_samples) +
                             " samples are fewer than one global batch of " + std::to_string(global_batch));
  reader_ = std::make_unique<data::PrefetchingReader>(std::move(dataset), data::Cursor{});
}

TrainBatch ShardBatches::next() {
  data::Batch b = reader_->next();
  TrainBatch t;
  t.size = options_.batch_per_rank;
  // A unique key per global batch for the step's random draws.
  t.position = b.cursor.epoch * steps_per_epoch_ * options_.batch_per_rank * options_.dp_size + b.cursor.position;
  t.latents = std::move(b.samples.latents.data);
  if (header_.has_latent_logvar) {
    // σ of the posterior in the stored (scaled) units: the trainer draws latents + σ·ε.
    t.latent_std = std::move(b.samples.latent_logvar.data);
    const float scale = static_cast<float>(header_.scaling_factor);
    for (float& v : t.latent_std) v = scale * std::exp(0.5f * v);
  }
  t.labels = std::move(b.samples.labels);
  t.text = std::move(b.samples.text_embeddings.data);
  return t;
}

std::vector<float> ShardBatches::null_condition() const {
  if (header_.null_text.empty()) return {};
  std::vector<float> padded(static_cast<size_t>(header_.text_numel()), 0.f);
  std::copy(header_.null_text.begin(), header_.null_text.end(), padded.begin());
  return padded;
}

nlohmann::json ShardBatches::cursor() const {
  const data::Cursor c = reader_->cursor();
  return {{"epoch", c.epoch}, {"position", c.position}};
}

void ShardBatches::restore(const nlohmann::json& c) {
  reader_.reset();  // stop the running thread before starting another
  data::ShardDataset dataset(paths_, options_);
  reader_ = std::make_unique<data::PrefetchingReader>(
      std::move(dataset), data::Cursor{c.at("epoch").get<int64_t>(), c.at("position").get<int64_t>()});
}

}  // namespace starflow::jobs
