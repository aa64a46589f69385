// safetensors files (golden fixtures, exported weights, upstream checkpoints): a validating reader that maps
// the file into memory (a 9.45 GB shard is not copied; only the tensors converted are read) and converts
// tensors to float/double, and an atomic writer (temporary name, fsync, rename).
// Format: u64 LE header length N, N bytes of JSON padded with spaces, then raw little-endian data.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/io/mapped_file.h"
#include "core/tensor.h"

namespace starflow::core::io {

// One header entry. begin/end are byte offsets into the data section (not the file), as in the format.
struct TensorInfo {
  std::string dtype;  // "F32", "F64", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"
  Shape shape;        // [] for a scalar (numel 1)
  uint64_t begin = 0;
  uint64_t end = 0;
  uint64_t bytes() const { return end - begin; }
};

class SafeTensorsFile {
 public:
  // Maps the file and validates its header. Throws std::runtime_error("<path>: <problem>") on any defect:
  // unreadable, too short, header length beyond the file, bad JSON, missing or ill-typed fields,
  // unsupported dtype, offsets that disagree with dtype×shape, run past the data, or overlap.
  static SafeTensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const { return names_; }  // file (data offset) order
  bool has(const std::string& name) const { return infos_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws "<path>: no tensor 'NAME'"
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::string metadata_value(const std::string& key) const;  // throws naming the key when missing

  // The stored little-endian bytes of one tensor, unconverted.
  std::span<const std::byte> raw(const std::string& name) const;

  // Converts any supported dtype to T (float or double). Integers beyond 2^24 (float) or 2^53 (double)
  // round; F16/BF16/F32 -> float and everything but I64 -> double are exact.
  template <class T>
  Tensor<T> read(const std::string& name) const;
  // Same, but first checks the shape: "<path>: tensor 'NAME' has shape [..], expected [..]".
  template <class T>
  Tensor<T> read(const std::string& name, const Shape& expected) const;
  // Converts into caller memory of exactly the tensor's element count (a model's parameter buffer: no
  // intermediate copy); the shape check as above.
  template <class T>
  void read_into(const std::string& name, const Shape& expected, std::span<T> out) const;

 private:
  SafeTensorsFile() = default;
  template <class T>
  void convert(const std::string& name, T* out) const;
  std::string path_;
  std::shared_ptr<const MappedFile> file_;  // shared: copies of this object read the same mapping
  uint64_t data_start_ = 0;          // 8 + header length
  std::map<std::string, TensorInfo> infos_;
  std::vector<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

extern template Tensor<float> SafeTensorsFile::read<float>(const std::string&) const;
extern template Tensor<double> SafeTensorsFile::read<double>(const std::string&) const;
extern template Tensor<float> SafeTensorsFile::read<float>(const std::string&, const Shape&) const;
extern template Tensor<double> SafeTensorsFile::read<double>(const std::string&, const Shape&) const;
extern template void SafeTensorsFile::read_into<float>(const std::string&, const Shape&, std::span<float>) const;
extern template void SafeTensorsFile::read_into<double>(const std::string&, const Shape&, std::span<double>) const;

// A tensor to write: raw little-endian bytes already in `dtype`. `data` must stay valid during the call.
struct TensorToWrite {
  std::string name;
  std::string dtype;  // "F32", "F64", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"
  Shape shape;
  const void* data = nullptr;
  size_t bytes = 0;  // must equal dtype size × numel(shape)
};

// Writes tensors back to back in the given order, header padded with spaces to a multiple of 8. The file
// goes to "<path>.tmp.<pid>", is fsync'd and renamed over `path`, so a crash never leaves a partial file
// under the final name. Throws std::runtime_error("<path>: <problem>") on bad input or I/O failure.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Views of a tensor's buffer for write_safetensors (F32 / F64); the tensor must outlive the write.
TensorToWrite from_tensor(const std::string& name, const Tensor<float>& tensor);
TensorToWrite from_tensor(const std::string& name, const Tensor<double>& tensor);

}  // namespace starflow::core::io
