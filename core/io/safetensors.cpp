// safetensors reader and writer. The reader trusts nothing in the file: every header field is checked
// before any offset is used, so a damaged or truncated file fails with one line instead of a crash. It reads
// through a read-only mapping, so opening a shard costs its header and reading a tensor costs that tensor.
// The writer goes through a temporary file and rename so readers never see a partial file.
#include "core/io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <stdexcept>
#include <system_error>
#include <tuple>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "core/io/files.h"
#include "core/io/float16.h"

namespace starflow::core::io {

// The format is little-endian and we memcpy elements straight out of the file.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

enum class Dtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

struct DtypeEntry {
  const char* name;
  Dtype dtype;
  uint64_t size;
};

constexpr DtypeEntry kDtypes[] = {
    {"F64", Dtype::F64, 8}, {"F32", Dtype::F32, 4}, {"F16", Dtype::F16, 2}, {"BF16", Dtype::BF16, 2},
    {"I64", Dtype::I64, 8}, {"I32", Dtype::I32, 4}, {"I16", Dtype::I16, 2}, {"I8", Dtype::I8, 1},
    {"U8", Dtype::U8, 1},   {"BOOL", Dtype::BOOL, 1},
};

std::optional<DtypeEntry> find_dtype(const std::string& name) {
  for (const DtypeEntry& entry : kDtypes)
    if (name == entry.name) return entry;
  return std::nullopt;
}

[[noreturn]] void fail(const std::string& path, const std::string& problem) { fail_file(path, problem); }

std::string tensor_label(const std::string& name) { return "tensor '" + printable(name) + "'"; }

std::string offsets_string(uint64_t begin, uint64_t end) {
  std::string text = "[";  // appended piecewise: GCC 12 warns falsely (-Wrestrict) on "[" + string&&
  text += std::to_string(begin);
  text += ", ";
  text += std::to_string(end);
  return text + "]";
}

// Product of the dims in uint64, or nullopt if it overflows.
std::optional<uint64_t> checked_numel(const Shape& shape) {
  uint64_t n = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return std::nullopt;
  return n;
}

const nlohmann::json* field(const nlohmann::json& entry, const char* key) {
  const auto it = entry.find(key);
  return it == entry.end() ? nullptr : &*it;
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const nlohmann::json& entry,
                       uint64_t data_bytes) {
  const std::string label = tensor_label(name);
  if (!entry.is_object()) fail(path, label + ": header entry is not a JSON object");
  TensorInfo info;

  const nlohmann::json* dtype = field(entry, "dtype");
  if (!dtype || !dtype->is_string()) fail(path, label + ": missing or non-string 'dtype'");
  info.dtype = dtype->get<std::string>();
  const std::optional<DtypeEntry> dtype_entry = find_dtype(info.dtype);
  if (!dtype_entry) fail(path, label + ": unsupported dtype '" + printable(info.dtype) + "'");

  const nlohmann::json* shape = field(entry, "shape");
  if (!shape || !shape->is_array()) fail(path, label + ": missing or non-array 'shape'");
  for (const nlohmann::json& dim : *shape) {
    if (!dim.is_number_unsigned() || dim.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      fail(path, label + ": 'shape' " + shape->dump() + " is not a list of non-negative integers");
    info.shape.push_back(static_cast<int64_t>(dim.get<uint64_t>()));
  }

  const nlohmann::json* offsets = field(entry, "data_offsets");
  if (!offsets || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned())
    fail(path, label + ": 'data_offsets' must be [begin, end] with non-negative integers");
  info.begin = (*offsets)[0].get<uint64_t>();
  info.end = (*offsets)[1].get<uint64_t>();
  const std::string offsets_text = "data_offsets " + offsets_string(info.begin, info.end);
  if (info.begin > info.end) fail(path, label + ": " + offsets_text + " run backwards");

  const std::optional<uint64_t> count = checked_numel(info.shape);
  uint64_t needed = 0;
  if (!count || __builtin_mul_overflow(*count, dtype_entry->size, &needed))
    fail(path, label + ": shape " + shape_string(info.shape) + " is too large");
  if (info.end - info.begin != needed)
    fail(path, label + ": " + offsets_text + " hold " + std::to_string(info.end - info.begin) + " bytes but " +
                   info.dtype + " " + shape_string(info.shape) + " needs " + std::to_string(needed));
  if (info.end > data_bytes)
    fail(path, label + ": " + offsets_text + " run past the end of the data section (" +
                   std::to_string(data_bytes) + " bytes; truncated file?)");
  return info;
}

template <class Stored, class T, class Convert>
void convert_elements(T* out, const std::byte* in, size_t count, Convert convert) {
  for (size_t i = 0; i < count; ++i) {
    Stored value;
    std::memcpy(&value, in + i * sizeof(Stored), sizeof(Stored));  // data need not be aligned
    out[i] = static_cast<T>(convert(value));
  }
}

template <class Stored, class T>
void cast_elements(T* out, const std::byte* in, size_t count) {
  if constexpr (std::is_same_v<Stored, T>) {
    if (count > 0) std::memcpy(out, in, count * sizeof(T));  // F32 weights: one copy (a 0-element tensor has none)
  }
  else convert_elements<Stored>(out, in, count, [](Stored v) { return v; });
}

}  // namespace

SafeTensorsFile SafeTensorsFile::open(const std::string& path) {
  SafeTensorsFile file;
  file.path_ = path;
  file.file_ = std::make_shared<const MappedFile>(path);
  const uint64_t file_bytes = file.file_->size();
  if (file_bytes < 8)
    fail(path, "file too short (" + std::to_string(file_bytes) +
                   " bytes); a safetensors file starts with an 8-byte header length");
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, file.file_->data(), 8);
  if (header_bytes > file_bytes - 8)
    fail(path, "header length " + std::to_string(header_bytes) + " exceeds the file size (" +
                   std::to_string(file_bytes) + " bytes)");
  file.data_start_ = 8 + header_bytes;
  const uint64_t data_bytes = file_bytes - file.data_start_;

  const auto* header_text = reinterpret_cast<const char*>(file.file_->data() + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_text, header_text + header_bytes);
  } catch (const nlohmann::json::exception& error) {  // parse_error, and out_of_range for huge numbers
    fail(path, std::string("header is not valid JSON: ") + error.what());
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(path, "'__metadata__' is not a JSON object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) fail(path, "metadata '" + printable(key) + "' is not a string");
        file.metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    file.infos_[name] = parse_entry(path, name, entry, data_bytes);
  }

  // The JSON object forgets key order; data order is the file's order, and sorting by it also lets
  // the overlap check compare neighbours only. Ties (empty tensors) fall back to the name.
  for (const auto& [name, info] : file.infos_) file.names_.push_back(name);
  const auto order_key = [&](const std::string& name) {
    const TensorInfo& info = file.infos_.at(name);
    return std::tie(info.begin, info.end, name);
  };
  std::sort(file.names_.begin(), file.names_.end(),
            [&](const std::string& a, const std::string& b) { return order_key(a) < order_key(b); });
  for (size_t i = 1; i < file.names_.size(); ++i) {
    const TensorInfo& previous = file.infos_.at(file.names_[i - 1]);
    const TensorInfo& current = file.infos_.at(file.names_[i]);
    if (current.begin < previous.end)
      fail(path, "tensors '" + printable(file.names_[i - 1]) + "' " + offsets_string(previous.begin, previous.end) +
                     " and '" + printable(file.names_[i]) + "' " + offsets_string(current.begin, current.end) +
                     " overlap");
  }
  return file;
}

const TensorInfo& SafeTensorsFile::info(const std::string& name) const {
  const auto it = infos_.find(name);
  if (it == infos_.end()) fail(path_, "no tensor '" + printable(name) + "'");
  return it->second;
}

std::string SafeTensorsFile::metadata_value(const std::string& key) const {
  const auto it = metadata_.find(key);
  if (it == metadata_.end()) fail(path_, "no metadata key '" + printable(key) + "'");
  return it->second;
}

std::span<const std::byte> SafeTensorsFile::raw(const std::string& name) const {
  const TensorInfo& tensor = info(name);
  return {file_->data() + data_start_ + tensor.begin, static_cast<size_t>(tensor.bytes())};
}

template <class T>
void SafeTensorsFile::convert(const std::string& name, T* dst) const {
  const TensorInfo& tensor = info(name);
  const std::byte* in = raw(name).data();
  const size_t count = static_cast<size_t>(numel(tensor.shape));
  // Read ahead, convert, then hand the pages back: a checkpoint read tensor by tensor keeps at most one
  // tensor's file pages in this process next to the converted copies.
  file_->will_need(data_start_ + tensor.begin, tensor.bytes());
  switch (find_dtype(tensor.dtype)->dtype) {  // open() accepted only known dtypes
    case Dtype::F64: cast_elements<double>(dst, in, count); break;
    case Dtype::F32: cast_elements<float>(dst, in, count); break;
    case Dtype::F16: convert_elements<uint16_t>(dst, in, count, half_bits_to_float); break;
    case Dtype::BF16: convert_elements<uint16_t>(dst, in, count, bfloat16_bits_to_float); break;
    case Dtype::I64: cast_elements<int64_t>(dst, in, count); break;
    case Dtype::I32: cast_elements<int32_t>(dst, in, count); break;
    case Dtype::I16: cast_elements<int16_t>(dst, in, count); break;
    case Dtype::I8: cast_elements<int8_t>(dst, in, count); break;
    case Dtype::U8: cast_elements<uint8_t>(dst, in, count); break;
    case Dtype::BOOL: convert_elements<uint8_t>(dst, in, count, [](uint8_t v) { return v != 0; }); break;
  }
  file_->release(data_start_ + tensor.begin, tensor.bytes());
}

template <class T>
Tensor<T> SafeTensorsFile::read(const std::string& name) const {
  Tensor<T> out(info(name).shape);
  convert(name, out.ptr());
  return out;
}

template <class T>
Tensor<T> SafeTensorsFile::read(const std::string& name, const Shape& expected) const {
  const TensorInfo& tensor = info(name);
  if (tensor.shape != expected)
    fail(path_, tensor_label(name) + " has shape " + shape_string(tensor.shape) + ", expected " +
                    shape_string(expected));
  return read<T>(name);
}

template <class T>
void SafeTensorsFile::read_into(const std::string& name, const Shape& expected, std::span<T> out) const {
  const TensorInfo& tensor = info(name);
  if (tensor.shape != expected)
    fail(path_, tensor_label(name) + " has shape " + shape_string(tensor.shape) + ", expected " +
                    shape_string(expected));
  if (out.size() != static_cast<size_t>(numel(expected)))
    throw std::invalid_argument(path_ + ": " + tensor_label(name) + ": destination holds " +
                                std::to_string(out.size()) + " elements, the tensor " +
                                std::to_string(numel(expected)));
  convert(name, out.data());
}

template Tensor<float> SafeTensorsFile::read<float>(const std::string&) const;
template Tensor<double> SafeTensorsFile::read<double>(const std::string&) const;
template Tensor<float> SafeTensorsFile::read<float>(const std::string&, const Shape&) const;
template Tensor<double> SafeTensorsFile::read<double>(const std::string&, const Shape&) const;
template void SafeTensorsFile::read_into<float>(const std::string&, const Shape&, std::span<float>) const;
template void SafeTensorsFile::read_into<double>(const std::string&, const Shape&, std::span<double>) const;

// ---------------------------------------------------------------------------------------------------
// Writer

namespace {

std::string build_header(const std::string& path, const std::vector<TensorToWrite>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();  // keep the caller's order
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const TensorToWrite& tensor : tensors) {
    const std::string label = tensor_label(tensor.name);
    if (tensor.name.empty() || tensor.name == "__metadata__") fail(path, "invalid " + label + " name");
    if (!seen.insert(tensor.name).second) fail(path, label + " appears twice");
    const std::optional<DtypeEntry> dtype = find_dtype(tensor.dtype);
    if (!dtype) fail(path, label + ": unsupported dtype '" + printable(tensor.dtype) + "'");
    const std::optional<uint64_t> count = checked_numel(tensor.shape);
    uint64_t needed = 0;
    if (!count || __builtin_mul_overflow(*count, dtype->size, &needed))
      fail(path, label + ": invalid shape " + shape_string(tensor.shape));
    if (tensor.bytes != needed)
      fail(path, label + ": " + std::to_string(tensor.bytes) + " bytes given but " + tensor.dtype + " " +
                     shape_string(tensor.shape) + " needs " + std::to_string(needed));
    if (tensor.bytes > 0 && tensor.data == nullptr) fail(path, label + ": null data");
    header[tensor.name] = {{"dtype", tensor.dtype},
                           {"shape", tensor.shape},
                           {"data_offsets", {offset, offset + tensor.bytes}}};
    offset += tensor.bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::type_error& error) {  // invalid UTF-8 in a name or metadata
    fail(path, std::string("cannot encode header: ") + error.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned
  return text;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  if (path.empty()) fail("<empty path>", "cannot write a safetensors file without a path");
  const std::string header = build_header(path, tensors, metadata);

  TemporaryFile temporary(temporary_path_for(path));
  FileDescriptor file(::open(temporary.path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!file.valid()) fail(path, "cannot create '" + temporary.path().string() + "': " + errno_text(errno));
  const uint64_t header_bytes = header.size();
  write_all(file.get(), &header_bytes, sizeof header_bytes, path);
  write_all(file.get(), header.data(), header.size(), path);
  for (const TensorToWrite& tensor : tensors) write_all(file.get(), tensor.data, tensor.bytes, path);
  if (::fsync(file.get()) != 0) fail(path, "fsync failed: " + errno_text(errno));
  if (file.close() != 0) fail(path, "close failed: " + errno_text(errno));
  temporary.commit();  // rename_into_place removes it if the rename fails
  rename_into_place(temporary.path(), path);
}

TensorToWrite from_tensor(const std::string& name, const Tensor<float>& tensor) {
  return {name, "F32", tensor.shape, tensor.data.data(), tensor.data.size() * sizeof(float)};
}

TensorToWrite from_tensor(const std::string& name, const Tensor<double>& tensor) {
  return {name, "F64", tensor.shape, tensor.data.data(), tensor.data.size() * sizeof(double)};
}

}  // namespace starflow::core::io
