// LatentShardWriter: appends samples to growable chunked datasets of a temporary HDF5 file and publishes it
// under its final name only when finish() has written the attributes and the data is on disk.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <initializer_list>
#include <stdexcept>
#include <utility>
#include <vector>

#include "core/io/files.h"
#include "core/io/float16.h"
#include "data/hdf5_check.h"
#include "data/latent_shard.h"
#include "data/shard_layout.h"

namespace starflow::data {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& problem) { core::io::fail_file(path, problem); }

void validate_header(const std::string& path, const ShardHeader& h) {
  if (h.autoencoder.empty()) fail(path, "the autoencoder name is empty");
  if (!std::isfinite(h.scaling_factor) || h.scaling_factor <= 0)
    fail(path, "scaling_factor must be finite and positive, got " + std::to_string(h.scaling_factor));
  if (h.latent_shape.size() != 3 || std::any_of(h.latent_shape.begin(), h.latent_shape.end(), [](int64_t d) { return d <= 0; }))
    fail(path, "latent_shape must be [C, H, W] with positive sizes, got " + core::shape_string(h.latent_shape));
  const bool labels = h.conditioning == Conditioning::ClassLabels;
  const bool text = h.conditioning == Conditioning::TextEmbeddings;
  if (labels != (h.num_classes > 0))
    fail(path, labels ? "class-label shards need num_classes > 0" : "num_classes must be 0 without class labels");
  if (h.num_classes < 0) fail(path, "num_classes is negative");
  if (text != (h.text_encoder != layout::kNoTextEncoder))
    fail(path, text ? "text shards need a text_encoder name other than 'none'"
                    : "text_encoder must be 'none' without text embeddings");
  if (text && (h.text_encoder.empty() || h.text_length <= 0 || h.text_dim <= 0))
    fail(path, "text shards need a text encoder name and positive text_length and text_dim");
  if (!text && (h.text_length != 0 || h.text_dim != 0))
    fail(path, "text_length and text_dim must be 0 without text embeddings");
  if (!text && !h.null_text.empty()) fail(path, "null_text is given but the shard holds no text");
  if (text && (static_cast<int64_t>(h.null_text.size()) % h.text_dim != 0 || h.null_text_rows() > h.text_length))
    fail(path, "null_text must be whole rows of text_dim values, at most text_length of them");
}

// One sample's worth of dims after the leading N.
using SampleDims = std::vector<hsize_t>;

Hdf5Handle create_sample_dataset(hid_t file, const std::string& path, const char* name, hid_t type,
                                 const SampleDims& sample_dims, hsize_t chunk_samples, int gzip_level) {
  std::vector<hsize_t> dims{0}, max_dims{H5S_UNLIMITED}, chunk{chunk_samples};
  dims.insert(dims.end(), sample_dims.begin(), sample_dims.end());
  max_dims.insert(max_dims.end(), sample_dims.begin(), sample_dims.end());
  chunk.insert(chunk.end(), sample_dims.begin(), sample_dims.end());
  const std::string site = std::string(" (") + name + ")";
  Hdf5Handle space = checked_dataspace(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), max_dims.data()),
                                       path, "H5Screate_simple" + site);
  Hdf5Handle create = checked_property_list(H5Pcreate(H5P_DATASET_CREATE), path, "H5Pcreate" + site);
  h5Check(H5Pset_chunk(create.get(), static_cast<int>(chunk.size()), chunk.data()), path, "H5Pset_chunk" + site);
  // HDF5 1.10 refuses filters on variable-length data (the strings live in a heap outside the chunks).
  const bool filtered = h5Check(H5Tis_variable_str(type), path, "H5Tis_variable_str" + site) == 0;
  if (filtered && gzip_level > 0) {
    if (H5Tget_size(type) > 1) h5Check(H5Pset_shuffle(create.get()), path, "H5Pset_shuffle" + site);
    h5Check(H5Pset_deflate(create.get(), static_cast<unsigned>(gzip_level)), path, "H5Pset_deflate" + site);
  }
  // Last in the pipeline, so the checksum covers the bytes on disk: corruption is an error, not noise.
  if (filtered) h5Check(H5Pset_fletcher32(create.get()), path, "H5Pset_fletcher32" + site);
  // Appends rarely end on chunk boundaries; a cache that holds the partly filled chunks means each chunk
  // is compressed once, when it is complete (w0 = 1 evicts fully written chunks first).
  const size_t chunk_bytes = H5Tget_size(type) * static_cast<size_t>(core::numel(core::Shape(chunk.begin(), chunk.end())));
  Hdf5Handle access = checked_property_list(H5Pcreate(H5P_DATASET_ACCESS), path, "H5Pcreate" + site);
  h5Check(H5Pset_chunk_cache(access.get(), 521, std::max<size_t>(size_t(1) << 20, 4 * chunk_bytes), 1.0), path,
          "H5Pset_chunk_cache" + site);
  return checked_dataset(H5Dcreate2(file, name, type, space.get(), H5P_DEFAULT, create.get(), access.get()), path,
                         "H5Dcreate2" + site);
}

// Grows `dataset` from `old_rows` to `old_rows + rows` samples and writes `data` into the new rows.
void append_rows(hid_t dataset, const std::string& path, const char* name, hid_t memory_type, hsize_t old_rows,
                 hsize_t rows, const SampleDims& sample_dims, const void* data) {
  const std::string site = std::string(" (") + name + ")";
  std::vector<hsize_t> new_dims{old_rows + rows}, start{old_rows}, count{rows};
  new_dims.insert(new_dims.end(), sample_dims.begin(), sample_dims.end());
  start.insert(start.end(), sample_dims.size(), 0);
  count.insert(count.end(), sample_dims.begin(), sample_dims.end());
  h5Check(H5Dset_extent(dataset, new_dims.data()), path, "H5Dset_extent" + site);
  Hdf5Handle file_space = checked_dataspace(H5Dget_space(dataset), path, "H5Dget_space" + site);
  h5Check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), path,
          "H5Sselect_hyperslab" + site);
  Hdf5Handle memory_space = checked_dataspace(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
                                              path, "H5Screate_simple" + site);
  h5Check(H5Dwrite(dataset, memory_type, memory_space.get(), file_space.get(), H5P_DEFAULT, data), path,
          "H5Dwrite" + site);
}

void write_attribute(hid_t file, const std::string& path, const char* name, hid_t type, const Hdf5Handle& space,
                     const void* value) {
  const std::string site = std::string(" (attribute ") + name + ")";
  Hdf5Handle attribute = checked_attribute(H5Acreate2(file, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT), path,
                                           "H5Acreate2" + site);
  h5Check(H5Awrite(attribute.get(), type, value), path, "H5Awrite" + site);
  h5Check(attribute.close(), path, "H5Aclose" + site);
}

void write_string_attribute(hid_t file, const std::string& path, const char* name, const std::string& value) {
  Hdf5Handle type = layout::utf8_string_type(path);
  Hdf5Handle scalar = checked_dataspace(H5Screate(H5S_SCALAR), path, "H5Screate");
  const char* text = value.c_str();
  write_attribute(file, path, name, type.get(), scalar, &text);
}

void write_int64_attribute(hid_t file, const std::string& path, const char* name, int64_t value) {
  Hdf5Handle scalar = checked_dataspace(H5Screate(H5S_SCALAR), path, "H5Screate");
  write_attribute(file, path, name, H5T_NATIVE_INT64, scalar, &value);
}

void write_double_attribute(hid_t file, const std::string& path, const char* name, double value) {
  Hdf5Handle scalar = checked_dataspace(H5Screate(H5S_SCALAR), path, "H5Screate");
  write_attribute(file, path, name, H5T_NATIVE_DOUBLE, scalar, &value);
}

void write_shape_attribute(hid_t file, const std::string& path, const char* name, const core::Shape& shape) {
  const hsize_t length = shape.size();
  Hdf5Handle space = checked_dataspace(H5Screate_simple(1, &length, nullptr), path, "H5Screate_simple");
  write_attribute(file, path, name, H5T_NATIVE_INT64, space, shape.data());
}

template <class T>
void check_span_size(const std::string& path, const char* what, std::span<const T> values, int64_t expected) {
  if (static_cast<int64_t>(values.size()) != expected)
    fail(path, std::string("append: ") + what + " has " + std::to_string(values.size()) + " values, expected " +
                   std::to_string(expected));
}

}  // namespace

struct LatentShardWriter::Impl {
  std::string path;
  std::string temporary;
  ShardHeader header;
  ShardWriterOptions options;
  Hdf5Handle file;
  Hdf5Handle half_type, bfloat16_type;
  Hdf5Handle string_type;
  Hdf5Handle latents, latent_logvar, sample_ids, labels, text_tokens, text_lengths, null_text, captions;
  SampleDims latent_dims, row_dims;
  int64_t text_rows = 0;  // rows of /text_tokens written so far
  std::vector<uint16_t> half_scratch;
  std::vector<float> row_scratch;
  std::vector<int64_t> length_scratch;
  bool finished = false;
  bool broken = false;  // an append or finish() failed part-way: the file is in no state to publish

  void close_all() {
    for (Hdf5Handle* handle : {&captions, &null_text, &text_lengths, &text_tokens, &labels, &sample_ids,
                               &latent_logvar, &latents, &string_type, &bfloat16_type, &half_type, &file})
      handle->reset();
  }

  ~Impl() {
    if (!finished) discard();
  }

  // A cancelled or failed shard leaves nothing behind. HDF5 still holds data it writes when its handles close,
  // and when that write fails (a full disk) H5Fclose fails and leaves HDF5 1.10 with a half-destroyed file
  // that crashes the library at exit (H5F__close_cb, from MPI_Finalize; fixed upstream in 1.14.1). The bytes
  // are worthless, so HDF5's descriptor is pointed at an anonymous in-memory file first: its last flushes (at
  // most the chunk caches, sparse) and the close's truncation succeed there, nothing more reaches the disk, and
  // the temporary is unlinked.
  void discard() {
    if (file.valid()) {
      Hdf5Lock lock(path);
      void* handle = nullptr;
      if (H5Fget_vfd_handle(file.get(), H5P_DEFAULT, &handle) >= 0 && handle != nullptr) {
        const int scratch = ::memfd_create("starflow-discarded-shard", MFD_CLOEXEC);
        if (scratch >= 0) {
          ::dup2(scratch, *static_cast<int*>(handle));
          ::close(scratch);
        }
      }
      hdf5_error_detail();  // clears HDF5's stack if the query failed
    }
    close_all();
    ::unlink(temporary.c_str());
  }

  // The type in the file; what we hand HDF5 from memory is native float or the 16-bit patterns.
  hid_t storage_type(StorageType type) const {
    return type == StorageType::Float16 ? half_type.get() : type == StorageType::BFloat16 ? bfloat16_type.get()
                                                                                           : H5T_IEEE_F32LE;
  }
  static int64_t storage_bytes(StorageType type) { return type == StorageType::Float32 ? 4 : 2; }

  // Appends `rows` rows after the dataset's first `old_rows`, as its storage type (we narrow to float16 and
  // bfloat16 ourselves: round to nearest even, the same bits PyTorch would write).
  void append_floats(hid_t dataset, const char* name, StorageType type, hsize_t old_rows, hsize_t rows,
                     const SampleDims& dims, std::span<const float> values) {
    if (type == StorageType::Float32) {
      append_rows(dataset, path, name, H5T_NATIVE_FLOAT, old_rows, rows, dims, values.data());
      return;
    }
    half_scratch.resize(values.size());
    for (size_t i = 0; i < values.size(); ++i)
      half_scratch[i] = type == StorageType::Float16 ? core::io::float_to_half_bits(values[i])
                                                     : core::io::float_to_bfloat16_bits(values[i]);
    append_rows(dataset, path, name, storage_type(type), old_rows, rows, dims, half_scratch.data());
  }
};

LatentShardWriter::LatentShardWriter(std::string path, ShardHeader header, ShardWriterOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& w = *impl_;
  w.path = std::move(path);
  if (w.path.empty()) fail("<empty path>", "a shard needs a file name");
  w.temporary = w.path + ".tmp." + std::to_string(::getpid());
  w.header = std::move(header);
  w.header.num_samples = 0;
  w.options = options;
  validate_header(w.path, w.header);
  if (options.gzip_level < 0 || options.gzip_level > 9)
    fail(w.path, "gzip level must be 0-9, got " + std::to_string(options.gzip_level));
  if (options.chunk_target_bytes <= 0) fail(w.path, "chunk_target_bytes must be positive");

  Hdf5Lock lock(w.path);
  if (options.gzip_level > 0 && H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0)
    fail(w.path, "this HDF5 library has no deflate filter; write with gzip level 0");
  // Version-1.10 structures checksum every piece of metadata (superblock, object headers, chunk index),
  // so damage there is reported on open instead of being read as garbage.
  Hdf5Handle access = checked_property_list(H5Pcreate(H5P_FILE_ACCESS), w.path, "H5Pcreate (file access)");
  h5Check(H5Pset_libver_bounds(access.get(), H5F_LIBVER_V110, H5F_LIBVER_V110), w.path, "H5Pset_libver_bounds");
  // Created under a name no reader globs for (FORMAT.md: shards end in .h5).
  w.file = checked_file(H5Fcreate(w.temporary.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access.get()), w.path,
                        "H5Fcreate '" + w.temporary + "'");
  w.half_type = layout::half_float_type(w.path);
  w.bfloat16_type = layout::bfloat16_type(w.path);
  w.string_type = layout::utf8_string_type(w.path);

  const ShardHeader& h = w.header;
  const auto to_dims = [](const core::Shape& shape) { return SampleDims(shape.begin(), shape.end()); };
  const auto chunk_samples = [&](int64_t sample_bytes) {
    return static_cast<hsize_t>(std::max<int64_t>(1, options.chunk_target_bytes / sample_bytes));
  };
  const int64_t latent_bytes = h.latent_numel() * Impl::storage_bytes(h.latent_type);
  w.latent_dims = to_dims(h.latent_shape);
  w.latents = create_sample_dataset(w.file.get(), w.path, layout::kLatents, w.storage_type(h.latent_type), w.latent_dims,
                                    chunk_samples(latent_bytes), options.gzip_level);
  if (h.has_latent_logvar)
    w.latent_logvar = create_sample_dataset(w.file.get(), w.path, layout::kLatentLogvar, w.storage_type(h.latent_type),
                                            w.latent_dims, chunk_samples(latent_bytes), options.gzip_level);
  w.sample_ids = create_sample_dataset(w.file.get(), w.path, layout::kSampleIds, H5T_STD_I64LE, {},
                                       layout::kIndexChunk, options.gzip_level);
  if (h.conditioning == Conditioning::ClassLabels)
    w.labels = create_sample_dataset(w.file.get(), w.path, layout::kLabels, H5T_STD_I64LE, {}, layout::kIndexChunk,
                                     options.gzip_level);
  if (h.conditioning == Conditioning::TextEmbeddings) {
    // Token rows, not samples, are the unit of /text_tokens: a chunk holds the target's worth of rows (a
    // sample's rows are contiguous, so a read touches about one chunk per sample, as for latents).
    const int64_t row_bytes = h.text_dim * Impl::storage_bytes(h.text_type);
    w.row_dims = {static_cast<hsize_t>(h.text_dim)};
    w.text_tokens = create_sample_dataset(w.file.get(), w.path, layout::kTextTokens, w.storage_type(h.text_type),
                                          w.row_dims, chunk_samples(row_bytes), options.gzip_level);
    w.text_lengths = create_sample_dataset(w.file.get(), w.path, layout::kTextLengths, H5T_STD_I64LE, {},
                                           layout::kIndexChunk, options.gzip_level);
    w.null_text = create_sample_dataset(w.file.get(), w.path, layout::kNullText, w.storage_type(h.text_type),
                                        w.row_dims, std::max<hsize_t>(1, h.null_text_rows()), options.gzip_level);
    if (!h.null_text.empty())
      w.append_floats(w.null_text.get(), layout::kNullText, h.text_type, 0, h.null_text_rows(), w.row_dims,
                      h.null_text);
  }
  if (h.has_captions)
    w.captions = create_sample_dataset(w.file.get(), w.path, layout::kCaptions, w.string_type.get(), {},
                                       layout::kCaptionChunk, options.gzip_level);
}

LatentShardWriter::~LatentShardWriter() = default;
LatentShardWriter::LatentShardWriter(LatentShardWriter&&) noexcept = default;
LatentShardWriter& LatentShardWriter::operator=(LatentShardWriter&&) noexcept = default;

const std::string& LatentShardWriter::path() const { return impl_->path; }
const std::string& LatentShardWriter::temporary_path() const { return impl_->temporary; }
int64_t LatentShardWriter::num_samples() const { return impl_->header.num_samples; }

void LatentShardWriter::append(const SampleSpans& s) {
  Impl& w = *impl_;
  const ShardHeader& h = w.header;
  if (w.finished) fail(w.path, "append after finish()");
  if (w.broken) fail(w.path, "append after an earlier append or finish() failed");
  if (s.count < 0) fail(w.path, "append: negative sample count");
  // Everything is checked before anything is written, so a rejected batch leaves the shard as it was.
  check_span_size(w.path, "latents", s.latents, s.count * h.latent_numel());
  check_span_size(w.path, "latent_logvar", s.latent_logvar, h.has_latent_logvar ? s.count * h.latent_numel() : 0);
  check_span_size(w.path, "sample_ids", s.sample_ids, s.count);
  const bool labels = h.conditioning == Conditioning::ClassLabels;
  const bool text = h.conditioning == Conditioning::TextEmbeddings;
  check_span_size(w.path, "labels", s.labels, labels ? s.count : 0);
  check_span_size(w.path, "text_embeddings", s.text_embeddings, text ? s.count * h.text_numel() : 0);
  check_span_size(w.path, "text_mask", s.text_mask, text ? s.count * h.text_length : 0);
  check_span_size(w.path, "captions", s.captions, h.has_captions ? s.count : 0);
  for (size_t i = 0; i < s.sample_ids.size(); ++i)
    if (s.sample_ids[i] < 0) fail(w.path, "append: negative sample id " + std::to_string(s.sample_ids[i]));
  for (int64_t label : s.labels)
    if (label < 0 || label >= h.num_classes)
      fail(w.path, "append: label " + std::to_string(label) + " is outside [0, " + std::to_string(h.num_classes) + ")");
  for (uint8_t m : s.text_mask)
    if (m > 1) fail(w.path, "append: text_mask values must be 0 or 1, got " + std::to_string(m));
  // Only the valid rows are stored: each mask must be a prefix of ones (what every tokenizer produces).
  w.length_scratch.assign(text ? static_cast<size_t>(s.count) : 0, 0);
  for (int64_t b = 0; text && b < s.count; ++b) {
    const uint8_t* m = s.text_mask.data() + b * h.text_length;
    int64_t n = 0;
    while (n < h.text_length && m[n]) ++n;
    for (int64_t t = n; t < h.text_length; ++t)
      if (m[t]) fail(w.path, "append: the text_mask of sample " + std::to_string(s.sample_ids[b]) +
                                 " has a valid token after padding (masks must be a prefix of ones)");
    w.length_scratch[b] = n;
  }
  if (s.count == 0) return;

  Hdf5Lock lock(w.path);
  w.broken = true;  // until every dataset has grown
  const auto rows = static_cast<hsize_t>(s.count);
  w.append_floats(w.latents.get(), layout::kLatents, h.latent_type, h.num_samples, rows, w.latent_dims, s.latents);
  if (h.has_latent_logvar)
    w.append_floats(w.latent_logvar.get(), layout::kLatentLogvar, h.latent_type, h.num_samples, rows, w.latent_dims,
                    s.latent_logvar);
  append_rows(w.sample_ids.get(), w.path, layout::kSampleIds, H5T_NATIVE_INT64, h.num_samples, rows, {},
              s.sample_ids.data());
  if (labels)
    append_rows(w.labels.get(), w.path, layout::kLabels, H5T_NATIVE_INT64, h.num_samples, rows, {}, s.labels.data());
  if (text) {
    w.row_scratch.clear();
    for (int64_t b = 0; b < s.count; ++b) {
      const float* rows_of_b = s.text_embeddings.data() + b * h.text_numel();
      w.row_scratch.insert(w.row_scratch.end(), rows_of_b, rows_of_b + w.length_scratch[b] * h.text_dim);
    }
    const auto token_rows = static_cast<hsize_t>(w.row_scratch.size() / static_cast<size_t>(h.text_dim));
    if (token_rows > 0)
      w.append_floats(w.text_tokens.get(), layout::kTextTokens, h.text_type, static_cast<hsize_t>(w.text_rows),
                      token_rows, w.row_dims, w.row_scratch);
    append_rows(w.text_lengths.get(), w.path, layout::kTextLengths, H5T_NATIVE_INT64, h.num_samples, rows, {},
                w.length_scratch.data());
    w.text_rows += static_cast<int64_t>(token_rows);
  }
  if (h.has_captions) {
    std::vector<const char*> pointers(s.captions.size());
    for (size_t i = 0; i < pointers.size(); ++i) pointers[i] = s.captions[i].c_str();
    append_rows(w.captions.get(), w.path, layout::kCaptions, w.string_type.get(), h.num_samples, rows, {},
                pointers.data());
  }
  w.header.num_samples += s.count;
  w.broken = false;
}

void LatentShardWriter::finish() {
  Impl& w = *impl_;
  const ShardHeader& h = w.header;
  if (w.finished) fail(w.path, "finish() called twice");
  if (w.broken) fail(w.path, "cannot finish: an earlier append or finish() failed");
  w.broken = true;  // until the rename
  {
    Hdf5Lock lock(w.path);
    const hid_t file = w.file.get();
    write_string_attribute(file, w.path, layout::kFormat, kShardFormatName);
    write_int64_attribute(file, w.path, layout::kFormatVersion, kShardFormatVersion);
    write_string_attribute(file, w.path, layout::kAutoencoder, h.autoencoder);
    write_double_attribute(file, w.path, layout::kScalingFactor, h.scaling_factor);
    write_shape_attribute(file, w.path, layout::kLatentShape, h.latent_shape);
    write_string_attribute(file, w.path, layout::kTextEncoder, h.text_encoder);
    write_int64_attribute(file, w.path, layout::kNumClasses, h.num_classes);
    if (h.conditioning == Conditioning::TextEmbeddings)
      write_int64_attribute(file, w.path, layout::kTextLength, h.text_length);
    write_int64_attribute(file, w.path, layout::kNumSamples, h.num_samples);
    write_string_attribute(file, w.path, layout::kSource, h.source);
    // Closing flushes the chunk caches: this is where the last chunks are compressed and written.
    using Named = std::pair<Hdf5Handle*, const char*>;
    for (auto [handle, name] : std::initializer_list<Named>{
             {&w.latents, layout::kLatents}, {&w.latent_logvar, layout::kLatentLogvar},
             {&w.sample_ids, layout::kSampleIds}, {&w.labels, layout::kLabels}, {&w.text_tokens, layout::kTextTokens},
             {&w.text_lengths, layout::kTextLengths}, {&w.null_text, layout::kNullText},
             {&w.captions, layout::kCaptions}})
      h5Check(handle->close(), w.path, std::string("H5Dclose (") + name + ")");
    w.string_type.reset();
    w.bfloat16_type.reset();
    w.half_type.reset();
    // Flushed first: a failed flush leaves the file open for discard(), where a failed H5Fclose would leave
    // HDF5 with a half-destroyed one (see discard()).
    h5Check(H5Fflush(w.file.get(), H5F_SCOPE_LOCAL), w.path, "H5Fflush '" + w.temporary + "'");
    h5Check(w.file.close(), w.path, "H5Fclose '" + w.temporary + "'");
  }
  // fsync through a fresh descriptor (HDF5 has closed its own, and close() does not imply durability),
  // rename, fsync of the directory.
  core::io::commit_temporary(w.temporary, w.path);
  w.finished = true;
  w.broken = false;
}

}  // namespace starflow::data
