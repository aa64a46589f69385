// Training batches from latent shards: the shuffled, data-parallel, prefetching reader of data/ behind the
// trainer's BatchSource interface. The cursor is the dataset's {epoch, position}, the same on every rank.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/prefetching_reader.h"
#include "jobs/batch_source.h"

namespace starflow::jobs {

class ShardBatches final : public BatchSource {
 public:
  // location: a shard file, a directory of shards or a glob.
  ShardBatches(const std::string& location, uint64_t seed, int64_t global_batch, int dp_rank, int dp_size);
  // These shards (a part of `location`'s, e.g. without the held-out ones); errors name `location`.
  ShardBatches(std::vector<std::string> paths, const std::string& location, uint64_t seed, int64_t global_batch,
               int dp_rank, int dp_size);
  TrainBatch next() override;
  nlohmann::json cursor() const override;
  void restore(const nlohmann::json& cursor) override;
  int64_t num_classes() const override { return header_.num_classes; }
  std::vector<float> null_condition() const override;
  const data::ShardHeader& header() const { return header_; }
  int64_t num_samples() const { return header_.num_samples; }
  double waited_seconds() const { return reader_->waited_seconds(); }

 private:
  std::vector<std::string> paths_;
  data::ShardDatasetOptions options_;
  data::ShardHeader header_;
  std::unique_ptr<data::PrefetchingReader> reader_;
  int64_t steps_per_epoch_ = 0;
};

}  // namespace starflow::jobs
