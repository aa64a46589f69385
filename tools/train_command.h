// What `starflow train` requires of a config beyond its own validation, shared with `starflow submit` so
// that a job that would fail at its first line is refused before it is queued.
#pragma once
#include <cstdint>
#include <string>

#include "data/latent_shard.h"
#include "jobs/train_config.h"

namespace starflow::tools {

// Throws std::runtime_error naming the file when `ranks` data-parallel ranks cannot run `config`: the
// batch does not divide, or (with open_data) the shards, headers only, are missing, inconsistent or do not
// fit the model.
void check_train_job(const jobs::TrainConfig& config, const std::string& config_path, int64_t ranks,
                     bool open_data);

// Throws std::runtime_error("<data>: ...") when shards with this header cannot feed the config's model.
void check_shards_fit(const jobs::TrainConfig& config, const data::ShardHeader& header);

}  // namespace starflow::tools
