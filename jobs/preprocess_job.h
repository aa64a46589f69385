// The preprocessing job: images (+ class labels or captions) → autoencoder latents (+ text embeddings) →
// HDF5 latent shards, on any number of MPI ranks and SLURM array tasks. Shard s of the input (samples
// [s·shard_size, (s+1)·shard_size)) is written by worker s mod W, W = array tasks × ranks; a shard that is
// already complete is skipped, so a rerun finishes only what is missing. Unreadable or wrong-sized images
// are reported by name and counted, never dropped silently.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace starflow::jobs {

struct PreprocessOptions {
  std::string dataset = "fashion-mnist";  // fashion-mnist | captions | labels | emoji
  std::string split = "train";            // fashion-mnist: train | test
  std::string images_dir, list_file;      // captions / labels: the folder and its list file
  std::string autoencoder;                // weights (.safetensors); default: the bundled one for the dataset
  std::string out_dir;
  std::string prefix = "shard";
  int64_t shard_size = 4096;
  int64_t limit = 0;                      // use only the first `limit` samples (0: all)
  int64_t text_length = 16;               // L tokens per caption (the flow's txt_size; flan-t5: 128)
  std::string text_encoder;               // a T5 folder or a word-vector file; default: the npm cache's vectors
  int64_t image_size = 0;                 // the training resolution for an autoencoder of any size (SD-VAE);
                                          // 0: the autoencoder's own (the small AE's trained size)
  int64_t shard_index = 0, shard_count = 1;  // this array task among shard_count
  int64_t batch = 256;                    // images encoded at once
};

struct PreprocessSummary {
  int64_t shards_total = 0, shards_written = 0, shards_already_complete = 0;
  int64_t samples_written = 0, images_skipped = 0;
  double seconds = 0;
};

// A preprocessing config file: YAML whose keys are the option names of `starflow preprocess` (dataset,
// split, images, list, autoencoder, text_encoder, image_size, out, prefix, shard_size, limit, text_length). Unknown keys and bad
// values are refused with "<path>: key 'K': ...".
PreprocessOptions preprocess_options_from_file(const std::string& path);

// Collective over comm. Every failure is a parallel::AgreedError, thrown alike on every rank. progress(shards done by this rank, shards of this rank) is called on rank 0.
PreprocessSummary run_preprocess(const PreprocessOptions& options, MPI_Comm comm,
                                 const std::function<void(int64_t, int64_t)>& progress = {});

// Rank 0's check of a run's manifest (<out>/<prefix>.preprocess.json): the first run into a directory records
// `want` there; a later run must match the recorded one. Returns the refusal (one line naming the file), or ""
// to go on. Used by run_preprocess; declared here for the fuzz target.
std::string check_or_record_manifest(const PreprocessOptions& options, const nlohmann::json& want);

// The bundled autoencoder for a dataset (data/pretrained/...), resolved against the source tree.
std::string default_autoencoder(const std::string& dataset);

}  // namespace starflow::jobs
