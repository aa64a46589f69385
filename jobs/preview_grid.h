// Preview grids during training: every `sample_every` steps the tensor-parallel group of data-parallel rank 0
// samples a fixed set of conditions from the same noise (so the grids of successive steps compare), denoises,
// decodes through the configured autoencoder and its tensor-parallel rank 0 writes
// <output_dir>/samples/step_<8 digits>.png atomically. Rows: one per class (class-conditional models, the first
// kMaxRows classes), one per `preview_captions` entry (text models; default the null
// caption), or kUnconditionalRows (unconditional models); conditioned rows are guided with the config's `cfg`.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "core/models/latent_codec.h"
#include "jobs/sample_job.h"
#include "jobs/train_config.h"

namespace starflow::jobs {

class PreviewGrid {
 public:
  static constexpr int64_t kColumns = 8, kMaxRows = 16, kUnconditionalRows = 4;

  // Loads the autoencoder and encodes the captions, so that a bad config fails before training starts;
  // throws std::runtime_error naming the config key and the file.
  explicit PreviewGrid(const TrainConfig& config);

  // Samples with `parameters` (the model's or the EMA weights, the model's layout) and writes the grid for
  // `step`; returns its path. Under tensor parallelism every rank of `tp` calls it with its shard (sampling
  // is collective there) and TP rank 0 writes. A failure (disk full, ...) is reported on stderr and
  // returns "": it must not stop the training run, whose other ranks are not waiting for the preview.
  std::string write(int64_t step, std::span<const float> parameters, core::Communicator* tp = nullptr);

  int64_t rows() const { return rows_; }
  std::string path_for(int64_t step) const;

 private:
  std::string write_grid(int64_t step, std::span<const float> parameters, core::Communicator* tp);

  core::FlowConfig model_;
  bool split_shallow_ = false;  // the trainer's TP layout (tp_shallow)
  std::unique_ptr<core::LatentCodec> autoencoder_;
  Conditioning condition_;
  std::vector<float> noise_;
  int64_t rows_ = 0;
  double guidance_ = 0, noise_std_ = 0;
  std::string dir_;
};

}  // namespace starflow::jobs
