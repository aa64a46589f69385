// Latent shards: self-describing HDF5 files of autoencoder latents with their conditioning, the unit that
// preprocessing writes (one rank per file) and training streams. The format is specified in data/FORMAT.md;
// this header is the only code that should need to know it.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace starflow::data {

inline constexpr const char* kShardFormatName = "starflow-latent-shard";
// Version 2 stores text unpadded (the valid token rows of each sample back to back, with their counts) and
// the null caption's embedding once; version 1 shards (padded text with a mask) are still read.
inline constexpr int64_t kShardFormatVersion = 2;

enum class StorageType { Float16, Float32, BFloat16 };  // how latents and text embeddings are stored on disk
enum class Conditioning { None, ClassLabels, TextEmbeddings };

const char* storage_type_name(StorageType type);    // "float16", "float32", "bfloat16"
const char* conditioning_name(Conditioning kind);   // "none", "class labels", "text embeddings"

// Everything a shard says about itself (its root attributes and dataset shapes). The writer takes one
// (num_samples is then ignored and counted); the reader returns one.
struct ShardHeader {
  std::string autoencoder;           // name of the autoencoder that produced the latents
  double scaling_factor = 1.0;       // latents are stored already multiplied by it
  core::Shape latent_shape;          // [C, H, W]
  StorageType latent_type = StorageType::Float16;
  // The latents are a Gaussian posterior's mean (scaled) and /latent_logvar holds its log-variance (unscaled
  // autoencoder space, stored like the latents): training draws mean + scaling·exp(logvar/2)·ε.
  bool has_latent_logvar = false;
  Conditioning conditioning = Conditioning::None;
  int64_t num_classes = 0;           // > 0 exactly for ClassLabels
  std::string text_encoder = "none"; // a name exactly for TextEmbeddings
  int64_t text_length = 0;           // L tokens (TextEmbeddings): the padded length batches are read at
  int64_t text_dim = 0;              // E dims per token (TextEmbeddings)
  StorageType text_type = StorageType::Float16;
  // The null caption's embedding, its valid rows only ([n, E], n ≤ L; empty for an encoder whose null
  // caption embeds to zeros): what condition dropout trains and guidance contrasts with.
  std::vector<float> null_text;
  bool has_captions = false;
  std::string source;                // free form: dataset, preprocessing command, rank
  int64_t num_samples = 0;

  int64_t latent_numel() const { return core::numel(latent_shape); }
  int64_t text_numel() const { return text_length * text_dim; }
  int64_t null_text_rows() const { return text_dim > 0 ? static_cast<int64_t>(null_text.size()) / text_dim : 0; }
  // Whether samples of the two headers can be batched together (everything but counts and source).
  bool same_content_as(const ShardHeader& other) const;
  std::string describe() const;  // one line, for logs and mismatch errors
};

// Samples in memory: what the reader returns and the dataset batches. Fields that do not apply to the
// shard's conditioning are empty.
struct SampleBatch {
  core::Tensor<float> latents;          // [B, C, H, W]
  core::Tensor<float> latent_logvar;    // [B, C, H, W] when the shard has it (unscaled log-variance)
  std::vector<int64_t> sample_ids;      // [B] global ids of the source samples
  std::vector<int64_t> labels;          // [B] class ids (ClassLabels)
  core::Tensor<float> text_embeddings;  // [B, L, E] (TextEmbeddings), zero past each sample's valid tokens
  core::Tensor<uint8_t> text_mask;      // [B, L], 1 = real token (TextEmbeddings), a prefix of ones
  std::vector<std::string> captions;    // [B] when the shard has captions and they were asked for
  int64_t size() const { return static_cast<int64_t>(sample_ids.size()); }

  // A batch of `count` samples shaped for `header`, zero-filled, captions sized only if `with_captions`.
  static SampleBatch allocate(const ShardHeader& header, int64_t count, bool with_captions);
};

// A batch to append, as views into the caller's buffers (no copy needed to write). Sizes are checked.
struct SampleSpans {
  int64_t count = 0;
  std::span<const float> latents;           // count × C×H×W
  std::span<const float> latent_logvar;     // count × C×H×W (has_latent_logvar)
  std::span<const int64_t> sample_ids;      // count
  std::span<const int64_t> labels;          // count, values in [0, num_classes) (ClassLabels)
  std::span<const float> text_embeddings;   // count × L×E (TextEmbeddings); rows past the mask are not stored
  std::span<const uint8_t> text_mask;       // count × L, each a prefix of ones then zeros (TextEmbeddings)
  std::span<const std::string> captions;    // count, valid UTF-8 (when has_captions)

  static SampleSpans of(const SampleBatch& batch);
};

struct ShardWriterOptions {
  int gzip_level = 1;  // 0 stores uncompressed; 1-9 deflate after byte shuffle (higher levels gain <1% on latents)
  // Bytes of one /latents (and /text_embeddings) chunk, rounded down to whole samples, at least one.
  // Training reads samples in a global random order, so each sample read decompresses its whole chunk:
  // small chunks keep that cheap. Measured on one core, 4×32×32 float16, gzip: 14k samples/s with one
  // sample (8 KiB) per chunk, 8k with 16 KiB chunks, 3.8k with 64 KiB. Below a few KiB the ~25 µs fixed
  // cost of reading a chunk dominates, so tiny samples are grouped.
  int64_t chunk_target_bytes = 4 << 10;
};

// Writes one shard. Samples go to "<path>.tmp.<pid>"; finish() records the attributes, closes, fsyncs and
// renames to `path`, so a shard under its final name is always complete. Destroying a writer that was
// not finished (an exception, a cancelled task) deletes the temporary file. Not for concurrent use.
class LatentShardWriter {
 public:
  LatentShardWriter(std::string path, ShardHeader header, ShardWriterOptions options = {});
  ~LatentShardWriter();
  LatentShardWriter(LatentShardWriter&&) noexcept;
  LatentShardWriter& operator=(LatentShardWriter&&) noexcept;

  void append(const SampleSpans& samples);
  void append(const SampleBatch& batch) { append(SampleSpans::of(batch)); }
  void finish();

  const std::string& path() const;
  const std::string& temporary_path() const;
  int64_t num_samples() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads one shard. Opening validates the whole structure (format, version, attributes against dataset
// shapes and types, labels in range) and throws std::runtime_error("<path>: <problem>") for anything
// wrong, including files that are truncated, corrupt or not HDF5. Damage inside the sample data is caught
// by the per-chunk checksums when those samples are read, with the same kind of one-line error.
// Only the header: validates the file's structure like the reader but loads no per-sample arrays (and so
// does not range-check labels).
ShardHeader read_shard_header(const std::string& path);

class LatentShardReader {
 public:
  explicit LatentShardReader(std::string path);
  ~LatentShardReader();
  LatentShardReader(LatentShardReader&&) noexcept;
  LatentShardReader& operator=(LatentShardReader&&) noexcept;

  const std::string& path() const;
  const ShardHeader& header() const;
  int64_t num_samples() const { return header().num_samples; }

  // Samples [begin, begin + count), latents and text converted to float.
  SampleBatch read(int64_t begin, int64_t count, bool with_captions = false) const;
  // Same, written into slots [slot, slot + count) of a batch from SampleBatch::allocate (the dataset uses
  // this to gather shuffled samples without copies). Captions are filled when the batch has room for them.
  void read_into(int64_t begin, int64_t count, SampleBatch& batch, int64_t slot) const;

 private:
  friend ShardHeader read_shard_header(const std::string& path);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

inline LatentShardReader open_shard(const std::string& path) { return LatentShardReader(path); }

}  // namespace starflow::data
