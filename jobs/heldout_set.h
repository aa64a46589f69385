// The held-out set that training evaluates every eval_every steps (exact bits/dim: the flow's likelihood is
// free evaluation). Fixed once at start-up: the same samples with the same noise at every evaluation, and in
// every run over the same data whatever its seed or layout, so that the figures compare.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "jobs/batch_source.h"
#include "jobs/train_config.h"

namespace starflow::jobs {

struct HeldoutSet {
  // This data-parallel rank's part of each held-out global batch, noise_std noise already added (a posterior's
  // mean where the data stores one). `position` is the global index of the batch's first sample.
  std::vector<TrainBatch> batches;
  int64_t global_batch = 0;    // samples per global batch (every rank's parts together)
  int64_t total_samples = 0;   // over all ranks and batches
  std::string description;     // "64 samples of DIR"
};

// Up to eval_batches global batches of batch_size from these shards, in the order of a fixed permutation (not
// the training seed's). Throws "<location>: ..." when they hold fewer samples than one global batch.
HeldoutSet heldout_from_shards(const std::vector<std::string>& paths, const std::string& location,
                               const TrainConfig& cfg, int dp_rank, int dp_size);

// Synthetic data: eval_batches global batches of the training distribution, from a part of the sample stream
// that training never reaches (indices from 2^40 on).
HeldoutSet heldout_synthetic(const TrainConfig& cfg, int dp_rank, int dp_size);

// eval_fraction of the training shards (sorted by name): every shard whose index i has floor((i + 1)·f) >
// floor(i·f), spread over the set; at least one held out and one left. Returns {training, held out}; throws
// "<location>: ..." when there are fewer than 2 shards.
std::pair<std::vector<std::string>, std::vector<std::string>> split_heldout_shards(std::vector<std::string> paths,
                                                                                   double fraction,
                                                                                   const std::string& location);

}  // namespace starflow::jobs
