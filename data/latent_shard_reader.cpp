// LatentShardReader: opens a shard, checks every attribute against the datasets it describes, keeps the
// small per-sample arrays (ids, labels, text mask) in memory and reads latents, text and captions on demand.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "core/io/float16.h"
#include "data/hdf5_check.h"
#include "data/latent_shard.h"
#include "data/shard_layout.h"

namespace starflow::data {

namespace {

using SampleDims = std::vector<hsize_t>;

[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw std::runtime_error(path + ": " + problem);
}

std::string dims_string(const std::vector<hsize_t>& dims) {
  return core::shape_string(core::Shape(dims.begin(), dims.end()));
}

// ---- attributes of the root group ----

Hdf5Handle open_attribute(hid_t file, const std::string& path, const char* name) {
  const std::string site = std::string(" (attribute ") + name + ")";
  if (h5Check(H5Aexists(file, name), path, "H5Aexists" + site) == 0) fail(path, std::string("missing attribute '") + name + "'");
  return checked_attribute(H5Aopen(file, name, H5P_DEFAULT), path, "H5Aopen" + site);
}

// Class and element count of an attribute, for the checks below.
struct AttributeShape {
  H5T_class_t type_class;
  hssize_t points;
};

AttributeShape attribute_shape(hid_t attribute, const std::string& path, const char* name) {
  const std::string site = std::string(" (attribute ") + name + ")";
  Hdf5Handle type = checked_datatype(H5Aget_type(attribute), path, "H5Aget_type" + site);
  Hdf5Handle space = checked_dataspace(H5Aget_space(attribute), path, "H5Aget_space" + site);
  return {h5Check(H5Tget_class(type.get()), path, "H5Tget_class" + site),
          h5Check(H5Sget_simple_extent_npoints(space.get()), path, "H5Sget_simple_extent_npoints" + site)};
}

[[noreturn]] void wrong_attribute(const std::string& path, const char* name, const char* expected) {
  fail(path, std::string("attribute '") + name + "' is not " + expected);
}

// Accepts fixed-length and variable-length strings (h5py writes the latter for str).
std::string read_string_attribute(hid_t file, const std::string& path, const char* name) {
  const std::string site = std::string(" (attribute ") + name + ")";
  Hdf5Handle attribute = open_attribute(file, path, name);
  const AttributeShape shape = attribute_shape(attribute.get(), path, name);
  if (shape.type_class != H5T_STRING || shape.points != 1) wrong_attribute(path, name, "a string");
  Hdf5Handle type = checked_datatype(H5Aget_type(attribute.get()), path, "H5Aget_type" + site);
  if (h5Check(H5Tis_variable_str(type.get()), path, "H5Tis_variable_str" + site) > 0) {
    Hdf5Handle memory_type = layout::utf8_string_type(path);
    char* text = nullptr;
    h5Check(H5Aread(attribute.get(), memory_type.get(), &text), path, "H5Aread" + site);
    std::string value = text != nullptr ? text : "";
    H5free_memory(text);
    return value;
  }
  const size_t size = H5Tget_size(type.get());
  if (size == 0) fail(path, std::string("attribute '") + name + "' has an invalid string size");
  std::string value(size, '\0');
  Hdf5Handle memory_type = checked_datatype(H5Tcopy(H5T_C_S1), path, "H5Tcopy" + site);
  h5Check(H5Tset_size(memory_type.get(), size), path, "H5Tset_size" + site);
  h5Check(H5Aread(attribute.get(), memory_type.get(), value.data()), path, "H5Aread" + site);
  value.resize(std::min(value.size(), value.find('\0')));  // NUL-terminated or NUL-padded
  return value;
}

std::vector<int64_t> read_integer_attribute(hid_t file, const std::string& path, const char* name) {
  Hdf5Handle attribute = open_attribute(file, path, name);
  const AttributeShape shape = attribute_shape(attribute.get(), path, name);
  if (shape.type_class != H5T_INTEGER) wrong_attribute(path, name, "an integer");
  std::vector<int64_t> values(static_cast<size_t>(shape.points));
  h5Check(H5Aread(attribute.get(), H5T_NATIVE_INT64, values.data()), path,
          std::string("H5Aread (attribute ") + name + ")");
  return values;
}

int64_t read_int64_attribute(hid_t file, const std::string& path, const char* name) {
  const std::vector<int64_t> values = read_integer_attribute(file, path, name);
  if (values.size() != 1) wrong_attribute(path, name, "a single integer");
  return values[0];
}

double read_double_attribute(hid_t file, const std::string& path, const char* name) {
  Hdf5Handle attribute = open_attribute(file, path, name);
  const AttributeShape shape = attribute_shape(attribute.get(), path, name);
  if ((shape.type_class != H5T_FLOAT && shape.type_class != H5T_INTEGER) || shape.points != 1)
    wrong_attribute(path, name, "a number");
  double value = 0;
  h5Check(H5Aread(attribute.get(), H5T_NATIVE_DOUBLE, &value), path, std::string("H5Aread (attribute ") + name + ")");
  return value;
}

// ---- datasets ----

struct DatasetInfo {
  Hdf5Handle dataset;
  Hdf5Handle type;
  std::vector<hsize_t> dims;
};

bool has_dataset(hid_t file, const std::string& path, const char* name) {
  return h5Check(H5Lexists(file, name, H5P_DEFAULT), path, std::string("H5Lexists (") + name + ")") > 0;
}

DatasetInfo open_dataset(hid_t file, const std::string& path, const char* name) {
  const std::string site = std::string(" (") + name + ")";
  if (!has_dataset(file, path, name)) fail(path, std::string("missing dataset ") + name);
  DatasetInfo info;
  info.dataset = checked_dataset(H5Dopen2(file, name, H5P_DEFAULT), path, "H5Dopen2" + site);
  info.type = checked_datatype(H5Dget_type(info.dataset.get()), path, "H5Dget_type" + site);
  Hdf5Handle space = checked_dataspace(H5Dget_space(info.dataset.get()), path, "H5Dget_space" + site);
  const int rank = h5Check(H5Sget_simple_extent_ndims(space.get()), path, "H5Sget_simple_extent_ndims" + site);
  info.dims.resize(static_cast<size_t>(rank));
  h5Check(H5Sget_simple_extent_dims(space.get(), info.dims.data(), nullptr), path, "H5Sget_simple_extent_dims" + site);
  return info;
}

void require_dims(const std::string& path, const char* name, const std::vector<hsize_t>& dims,
                  const std::vector<hsize_t>& expected) {
  if (dims != expected)
    fail(path, std::string(name) + " has shape " + dims_string(dims) + " but the attributes say " + dims_string(expected));
}

// float32 in either byte order (HDF5 converts), IEEE half as h5py and we write it, or bfloat16 as we write it.
StorageType float_storage(const std::string& path, const char* name, hid_t type) {
  const std::string site = std::string(" (") + name + ")";
  const H5T_class_t type_class = h5Check(H5Tget_class(type), path, "H5Tget_class" + site);
  const size_t size = H5Tget_size(type);
  if (type_class == H5T_FLOAT && size == 4) return StorageType::Float32;
  if (type_class == H5T_FLOAT && size == 2 && H5Tget_order(type) == H5T_ORDER_LE) {
    size_t sign = 0, exponent_position = 0, exponent_size = 0, mantissa_position = 0, mantissa_size = 0;
    h5Check(H5Tget_fields(type, &sign, &exponent_position, &exponent_size, &mantissa_position, &mantissa_size), path,
            "H5Tget_fields" + site);
    const size_t bias = H5Tget_ebias(type);
    if (sign == 15 && exponent_position == 10 && exponent_size == 5 && mantissa_position == 0 && mantissa_size == 10 &&
        bias == 15)
      return StorageType::Float16;
    if (sign == 15 && exponent_position == 7 && exponent_size == 8 && mantissa_position == 0 && mantissa_size == 7 &&
        bias == 127)
      return StorageType::BFloat16;
  }
  fail(path, std::string(name) + " must be float16, bfloat16 or float32");
}

void require_integer(const std::string& path, const char* name, hid_t type, size_t max_bytes) {
  if (H5Tget_class(type) != H5T_INTEGER || H5Tget_size(type) > max_bytes)
    fail(path, std::string(name) + " must be an integer type of at most " + std::to_string(max_bytes) + " bytes");
}

// Reads samples [begin, begin + rows) of a per-sample dataset into `out`, converting to `memory_type`.
void read_rows(hid_t dataset, const std::string& path, const char* name, hid_t memory_type, hsize_t begin, hsize_t rows,
               const SampleDims& sample_dims, void* out) {
  const std::string site = std::string(" (") + name + " samples [" + std::to_string(begin) + ", " +
                           std::to_string(begin + rows) + "))";
  std::vector<hsize_t> start{begin}, count{rows};
  start.insert(start.end(), sample_dims.size(), 0);
  count.insert(count.end(), sample_dims.begin(), sample_dims.end());
  Hdf5Handle file_space = checked_dataspace(H5Dget_space(dataset), path, "H5Dget_space" + site);
  h5Check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), path,
          "H5Sselect_hyperslab" + site);
  Hdf5Handle memory_space = checked_dataspace(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
                                              path, "H5Screate_simple" + site);
  h5Check(H5Dread(dataset, memory_type, memory_space.get(), file_space.get(), H5P_DEFAULT, out), path, "H5Dread" + site);
}

// Returns the strings HDF5 allocated for a variable-length read, however the copy out ends.
class VariableLengthStrings {
 public:
  VariableLengthStrings(hid_t type, size_t count) : type_(type), pointers_(count, nullptr) {}
  ~VariableLengthStrings() {
    const auto count = static_cast<hsize_t>(pointers_.size());
    const hid_t space = H5Screate_simple(1, &count, nullptr);
    if (space >= 0) {
      H5Dvlen_reclaim(type_, space, H5P_DEFAULT, pointers_.data());
      H5Sclose(space);
    }
  }
  VariableLengthStrings(const VariableLengthStrings&) = delete;
  VariableLengthStrings& operator=(const VariableLengthStrings&) = delete;
  char** data() { return pointers_.data(); }
  std::string operator[](size_t i) const { return pointers_[i] != nullptr ? pointers_[i] : ""; }

 private:
  hid_t type_;
  std::vector<char*> pointers_;
};

}  // namespace

struct LatentShardReader::Impl {
  std::string path;
  ShardHeader header;
  Hdf5Handle file;
  Hdf5Handle half_type, bfloat16_type, string_type;
  Hdf5Handle latents, latent_logvar, text_embeddings, text_tokens, captions;
  SampleDims latent_dims, text_dims, row_dims;
  bool unpadded_text = false;  // version 2: /text_tokens + /text_lengths; version 1: /text_embeddings + /text_mask
  // Small per-sample arrays live in memory: a shuffled read then costs one chunk of latents (and one of
  // text), not a chunk of every dataset.
  std::vector<int64_t> sample_ids, labels;
  std::vector<uint8_t> text_mask;     // [N, L] (version 1)
  std::vector<int64_t> text_offsets;  // [N + 1]: sample i's rows are [offsets[i], offsets[i + 1]) (version 2)
  mutable std::vector<uint16_t> half_scratch;  // used only under the HDF5 lock
  mutable std::vector<float> row_scratch;

  void open(bool load_arrays);
  void open_unpadded_text(hid_t f, hsize_t n, bool load_arrays);
  void read_floats(hid_t dataset, const char* name, StorageType type, hsize_t begin, hsize_t rows,
                   const SampleDims& dims, float* out) const;
};

void LatentShardReader::Impl::open(bool load_arrays) {
  {  // plain-file errors first: they read better than HDF5's
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path, "cannot open: " + std::system_category().message(errno));
    ::close(fd);
  }
  Hdf5Lock lock(path);
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 == 0) fail(path, "not an HDF5 file (no HDF5 signature)");
  h5Check(is_hdf5, path, "H5Fis_hdf5");
  file = checked_file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), path, "H5Fopen");
  const hid_t f = file.get();

  if (h5Check(H5Aexists(f, layout::kFormat), path, "H5Aexists (attribute format)") == 0)
    fail(path, "not a starflow latent shard (no 'format' attribute)");
  const std::string format = read_string_attribute(f, path, layout::kFormat);
  if (format != kShardFormatName) fail(path, "not a starflow latent shard (format is '" + format + "')");
  const int64_t version = read_int64_attribute(f, path, layout::kFormatVersion);
  if (version > kShardFormatVersion)
    fail(path, "format_version " + std::to_string(version) + " is newer than this reader (" +
                   std::to_string(kShardFormatVersion) + "); update starflow");
  if (version < 1) fail(path, "invalid format_version " + std::to_string(version));

  ShardHeader& h = header;
  h.autoencoder = read_string_attribute(f, path, layout::kAutoencoder);
  h.scaling_factor = read_double_attribute(f, path, layout::kScalingFactor);
  h.latent_shape = read_integer_attribute(f, path, layout::kLatentShape);
  h.text_encoder = read_string_attribute(f, path, layout::kTextEncoder);
  h.num_classes = read_int64_attribute(f, path, layout::kNumClasses);
  h.num_samples = read_int64_attribute(f, path, layout::kNumSamples);
  h.source = read_string_attribute(f, path, layout::kSource);
  if (!std::isfinite(h.scaling_factor) || h.scaling_factor <= 0) fail(path, "scaling_factor must be finite and positive");
  if (h.latent_shape.size() != 3 || std::any_of(h.latent_shape.begin(), h.latent_shape.end(), [](int64_t d) { return d <= 0; }))
    fail(path, "latent_shape must be [C, H, W] with positive sizes, got " + core::shape_string(h.latent_shape));
  if (h.num_classes < 0) fail(path, "num_classes is negative");
  if (h.num_samples < 0) fail(path, "num_samples is negative");
  const bool labeled = h.num_classes > 0;
  const bool text = h.text_encoder != layout::kNoTextEncoder;
  if (labeled && text) fail(path, "has both class labels (num_classes > 0) and a text encoder; a shard holds one kind");
  h.conditioning = labeled ? Conditioning::ClassLabels : text ? Conditioning::TextEmbeddings : Conditioning::None;
  const auto n = static_cast<hsize_t>(h.num_samples);

  DatasetInfo latent_info = open_dataset(f, path, layout::kLatents);
  latent_dims.assign(h.latent_shape.begin(), h.latent_shape.end());
  SampleDims expected{n};
  expected.insert(expected.end(), latent_dims.begin(), latent_dims.end());
  require_dims(path, layout::kLatents, latent_info.dims, expected);
  h.latent_type = float_storage(path, layout::kLatents, latent_info.type.get());
  latents = std::move(latent_info.dataset);
  h.has_latent_logvar = has_dataset(f, path, layout::kLatentLogvar);
  if (h.has_latent_logvar) {
    DatasetInfo logvar_info = open_dataset(f, path, layout::kLatentLogvar);
    require_dims(path, layout::kLatentLogvar, logvar_info.dims, expected);
    if (float_storage(path, layout::kLatentLogvar, logvar_info.type.get()) != h.latent_type)
      fail(path, "/latent_logvar must be stored like /latents (" + std::string(storage_type_name(h.latent_type)) + ")");
    latent_logvar = std::move(logvar_info.dataset);
  }

  DatasetInfo id_info = open_dataset(f, path, layout::kSampleIds);
  require_dims(path, layout::kSampleIds, id_info.dims, {n});
  require_integer(path, layout::kSampleIds, id_info.type.get(), 8);

  std::optional<DatasetInfo> label_info;
  if (labeled) {
    label_info = open_dataset(f, path, layout::kLabels);
    require_dims(path, layout::kLabels, label_info->dims, {n});
    require_integer(path, layout::kLabels, label_info->type.get(), 8);
  } else if (has_dataset(f, path, layout::kLabels)) {
    fail(path, "has /labels but num_classes is 0");
  }

  half_type = layout::half_float_type(path);
  bfloat16_type = layout::bfloat16_type(path);
  string_type = layout::utf8_string_type(path);
  std::optional<DatasetInfo> mask_info;
  unpadded_text = text && has_dataset(f, path, layout::kTextTokens);
  if (unpadded_text) {
    if (version < 2) fail(path, "/text_tokens is a format_version 2 dataset but the file says version 1");
    open_unpadded_text(f, n, load_arrays);
  } else if (text) {
    DatasetInfo text_info = open_dataset(f, path, layout::kTextEmbeddings);
    if (text_info.dims.size() != 3 || text_info.dims[0] != n || text_info.dims[1] == 0 || text_info.dims[2] == 0)
      fail(path, "/text_embeddings has shape " + dims_string(text_info.dims) + ", expected [" + std::to_string(n) +
                     ", L, E] with L, E > 0");
    h.text_length = static_cast<int64_t>(text_info.dims[1]);
    h.text_dim = static_cast<int64_t>(text_info.dims[2]);
    h.text_type = float_storage(path, layout::kTextEmbeddings, text_info.type.get());
    text_dims = {text_info.dims[1], text_info.dims[2]};
    mask_info = open_dataset(f, path, layout::kTextMask);
    require_dims(path, layout::kTextMask, mask_info->dims, {n, text_info.dims[1]});
    require_integer(path, layout::kTextMask, mask_info->type.get(), 1);
    text_embeddings = std::move(text_info.dataset);
  } else if (has_dataset(f, path, layout::kTextEmbeddings) || has_dataset(f, path, layout::kTextMask) ||
             has_dataset(f, path, layout::kTextTokens)) {
    fail(path, "has text datasets but text_encoder is 'none'");
  }

  h.has_captions = has_dataset(f, path, layout::kCaptions);
  if (h.has_captions) {
    DatasetInfo caption_info = open_dataset(f, path, layout::kCaptions);
    require_dims(path, layout::kCaptions, caption_info.dims, {n});
    if (H5Tget_class(caption_info.type.get()) != H5T_STRING || H5Tis_variable_str(caption_info.type.get()) <= 0)
      fail(path, "/captions must hold variable-length strings");
    captions = std::move(caption_info.dataset);
  }

  if (!load_arrays || n == 0) return;
  sample_ids.resize(n);
  read_rows(id_info.dataset.get(), path, layout::kSampleIds, H5T_NATIVE_INT64, 0, n, {}, sample_ids.data());
  if (labeled) {
    labels.resize(n);
    read_rows(label_info->dataset.get(), path, layout::kLabels, H5T_NATIVE_INT64, 0, n, {}, labels.data());
    for (size_t i = 0; i < labels.size(); ++i)
      if (labels[i] < 0 || labels[i] >= h.num_classes)
        fail(path, "/labels[" + std::to_string(i) + "] = " + std::to_string(labels[i]) + " is outside [0, " +
                       std::to_string(h.num_classes) + ")");
  }
  if (text && !unpadded_text) {
    text_mask.resize(n * static_cast<size_t>(h.text_length));
    read_rows(mask_info->dataset.get(), path, layout::kTextMask, H5T_NATIVE_UINT8, 0, n,
              {static_cast<hsize_t>(h.text_length)}, text_mask.data());
    for (size_t i = 0; i < text_mask.size(); ++i)
      if (text_mask[i] > 1)
        fail(path, "/text_mask of sample " + std::to_string(i / static_cast<size_t>(h.text_length)) + " is not 0/1");
  }
}

// Version 2 text: the attribute text_length, /text_tokens [T, E], /text_lengths [N] (each in [0, L], summing to
// T) and /null_text [n, E]; the null caption is read here, the lengths (as offsets) when arrays are loaded.
void LatentShardReader::Impl::open_unpadded_text(hid_t f, hsize_t n, bool load_arrays) {
  ShardHeader& h = header;
  h.text_length = read_int64_attribute(f, path, layout::kTextLength);
  if (h.text_length <= 0) fail(path, "text_length must be positive");
  DatasetInfo tokens = open_dataset(f, path, layout::kTextTokens);
  if (tokens.dims.size() != 2 || tokens.dims[1] == 0)
    fail(path, "/text_tokens has shape " + dims_string(tokens.dims) + ", expected [T, E] with E > 0");
  h.text_dim = static_cast<int64_t>(tokens.dims[1]);
  h.text_type = float_storage(path, layout::kTextTokens, tokens.type.get());
  row_dims = {tokens.dims[1]};
  DatasetInfo lengths = open_dataset(f, path, layout::kTextLengths);
  require_dims(path, layout::kTextLengths, lengths.dims, {n});
  require_integer(path, layout::kTextLengths, lengths.type.get(), 8);
  DatasetInfo null_info = open_dataset(f, path, layout::kNullText);
  if (null_info.dims.size() != 2 || null_info.dims[1] != tokens.dims[1] ||
      null_info.dims[0] > static_cast<hsize_t>(h.text_length))
    fail(path, "/null_text has shape " + dims_string(null_info.dims) + ", expected [n, " + std::to_string(h.text_dim) +
                   "] with n <= text_length " + std::to_string(h.text_length));
  if (float_storage(path, layout::kNullText, null_info.type.get()) != h.text_type)
    fail(path, "/null_text must be stored like /text_tokens");
  h.null_text.resize(null_info.dims[0] * tokens.dims[1]);
  if (!h.null_text.empty())
    read_floats(null_info.dataset.get(), layout::kNullText, h.text_type, 0, null_info.dims[0], row_dims,
                h.null_text.data());
  text_tokens = std::move(tokens.dataset);
  if (!load_arrays) return;
  std::vector<int64_t> counts(n);
  if (n > 0) read_rows(lengths.dataset.get(), path, layout::kTextLengths, H5T_NATIVE_INT64, 0, n, {}, counts.data());
  text_offsets.assign(n + 1, 0);
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] < 0 || counts[i] > h.text_length)
      fail(path, "/text_lengths[" + std::to_string(i) + "] = " + std::to_string(counts[i]) + " is outside [0, " +
                     std::to_string(h.text_length) + "]");
    text_offsets[i + 1] = text_offsets[i] + counts[i];
  }
  if (text_offsets.back() != static_cast<int64_t>(tokens.dims[0]))
    fail(path, "/text_lengths sum to " + std::to_string(text_offsets.back()) + " rows but /text_tokens has " +
                   std::to_string(tokens.dims[0]));
}

void LatentShardReader::Impl::read_floats(hid_t dataset, const char* name, StorageType type, hsize_t begin,
                                          hsize_t rows, const SampleDims& dims, float* out) const {
  if (type == StorageType::Float32) {
    read_rows(dataset, path, name, H5T_NATIVE_FLOAT, begin, rows, dims, out);
    return;
  }
  size_t count = rows;
  for (hsize_t d : dims) count *= d;
  half_scratch.resize(count);
  const bool half = type == StorageType::Float16;
  read_rows(dataset, path, name, half ? half_type.get() : bfloat16_type.get(), begin, rows, dims, half_scratch.data());
  for (size_t i = 0; i < count; ++i)
    out[i] = half ? core::io::half_bits_to_float(half_scratch[i]) : core::io::bfloat16_bits_to_float(half_scratch[i]);
}

LatentShardReader::LatentShardReader(std::string path) : impl_(std::make_unique<Impl>()) {
  impl_->path = std::move(path);
  impl_->open(/*load_arrays=*/true);
}

LatentShardReader::~LatentShardReader() = default;
LatentShardReader::LatentShardReader(LatentShardReader&&) noexcept = default;
LatentShardReader& LatentShardReader::operator=(LatentShardReader&&) noexcept = default;

const std::string& LatentShardReader::path() const { return impl_->path; }
const ShardHeader& LatentShardReader::header() const { return impl_->header; }

SampleBatch LatentShardReader::read(int64_t begin, int64_t count, bool with_captions) const {
  if (count < 0) fail(impl_->path, "read: negative sample count");
  SampleBatch batch = SampleBatch::allocate(impl_->header, count, with_captions);
  read_into(begin, count, batch, 0);
  return batch;
}

void LatentShardReader::read_into(int64_t begin, int64_t count, SampleBatch& batch, int64_t slot) const {
  const Impl& r = *impl_;
  const ShardHeader& h = r.header;
  if (begin < 0 || count < 0 || begin + count > h.num_samples)
    fail(r.path, "samples [" + std::to_string(begin) + ", " + std::to_string(begin + count) + ") are outside [0, " +
                     std::to_string(h.num_samples) + ")");
  const int64_t size = batch.size();
  const bool labeled = h.conditioning == Conditioning::ClassLabels;
  const bool text = h.conditioning == Conditioning::TextEmbeddings;
  const bool fits = slot >= 0 && slot + count <= size && batch.latents.size() == size * h.latent_numel() &&
                    (!h.has_latent_logvar || batch.latent_logvar.size() == size * h.latent_numel()) &&
                    (!labeled || batch.labels.size() == static_cast<size_t>(size)) &&
                    (!text || (batch.text_embeddings.size() == size * h.text_numel() &&
                               batch.text_mask.size() == size * h.text_length));
  if (!fits) fail(r.path, "read_into: the batch was not allocated for this shard's samples or is too small");
  if (count == 0) return;

  std::copy_n(r.sample_ids.begin() + begin, count, batch.sample_ids.begin() + slot);
  if (labeled) std::copy_n(r.labels.begin() + begin, count, batch.labels.begin() + slot);
  const auto first = static_cast<hsize_t>(begin), rows = static_cast<hsize_t>(count);
  Hdf5Lock lock(r.path);
  r.read_floats(r.latents.get(), layout::kLatents, h.latent_type, first, rows, r.latent_dims,
                batch.latents.ptr() + slot * h.latent_numel());
  if (h.has_latent_logvar)
    r.read_floats(r.latent_logvar.get(), layout::kLatentLogvar, h.latent_type, first, rows, r.latent_dims,
                  batch.latent_logvar.ptr() + slot * h.latent_numel());
  if (text && r.unpadded_text) {
    // The samples' rows are contiguous: one read, then each sample's rows into its padded slot.
    const int64_t row_begin = r.text_offsets[begin], row_end = r.text_offsets[begin + count];
    r.row_scratch.resize(static_cast<size_t>((row_end - row_begin) * h.text_dim));
    if (row_end > row_begin)
      r.read_floats(r.text_tokens.get(), layout::kTextTokens, h.text_type, static_cast<hsize_t>(row_begin),
                    static_cast<hsize_t>(row_end - row_begin), r.row_dims, r.row_scratch.data());
    for (int64_t i = 0; i < count; ++i) {
      const int64_t length = r.text_offsets[begin + i + 1] - r.text_offsets[begin + i];
      float* out = batch.text_embeddings.ptr() + (slot + i) * h.text_numel();
      const float* in = r.row_scratch.data() + (r.text_offsets[begin + i] - row_begin) * h.text_dim;
      std::copy_n(in, length * h.text_dim, out);
      std::fill(out + length * h.text_dim, out + h.text_numel(), 0.f);
      uint8_t* mask = batch.text_mask.data.data() + (slot + i) * h.text_length;
      std::fill(mask, mask + h.text_length, uint8_t{0});
      std::fill(mask, mask + length, uint8_t{1});
    }
  } else if (text) {
    r.read_floats(r.text_embeddings.get(), layout::kTextEmbeddings, h.text_type, first, rows, r.text_dims,
                  batch.text_embeddings.ptr() + slot * h.text_numel());
    std::copy_n(r.text_mask.begin() + begin * h.text_length, count * h.text_length,
                batch.text_mask.data.begin() + slot * h.text_length);
  }
  if (h.has_captions && batch.captions.size() == static_cast<size_t>(size)) {
    VariableLengthStrings strings(r.string_type.get(), rows);
    read_rows(r.captions.get(), r.path, layout::kCaptions, r.string_type.get(), first, rows, {}, strings.data());
    for (int64_t i = 0; i < count; ++i) batch.captions[slot + i] = strings[i];
  }
}

ShardHeader read_shard_header(const std::string& path) {
  LatentShardReader::Impl impl;
  impl.path = path;
  impl.open(/*load_arrays=*/false);
  return impl.header;
}

}  // namespace starflow::data
