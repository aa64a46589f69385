// A checkpoint of one or more safetensors files, as Hugging Face saves large models: a directory with
// model.safetensors.index.json ({"metadata": {...}, "weight_map": {tensor: shard file}}) and its shards, or
// a single model.safetensors. Every shard is memory-mapped (core/io/safetensors.h), so opening costs the
// headers and reading costs only the tensors asked for: a T5 encoder never reads the decoder beside it.
#pragma once
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/io/safetensors.h"

namespace starflow::core::io {

class ShardedSafeTensors {
 public:
  // `path`: a directory (its model.safetensors.index.json, else its model.safetensors), an index .json file,
  // or one .safetensors file. Throws FileError (one line naming the file) for a missing or damaged index, a
  // shard the index names that is missing or damaged, or a header with an unknown dtype.
  static ShardedSafeTensors open(const std::string& path);

  const std::string& path() const { return path_; }  // the index or the single file that was opened
  std::vector<std::string> names() const;            // every tensor, sorted
  bool has(const std::string& name) const { return shard_of_.count(name) != 0; }
  // The shard file holding `name`; throws "<index>: no tensor 'NAME'".
  const std::string& shard_path(const std::string& name) const;
  // Throws as shard_path, or "<shard>: no tensor 'NAME' (<index> maps it to this file)".
  const TensorInfo& info(const std::string& name) const;
  const std::map<std::string, std::string>& index_metadata() const { return index_metadata_; }

  // A weight (F32, F16, BF16 or F64) converted to T (float or double) into caller memory, or as a tensor; the
  // shape must be `expected`. Integer tensors are refused naming the shard, the tensor and its dtype.
  template <class T>
  void read_into(const std::string& name, const Shape& expected, std::span<T> out) const;
  template <class T>
  Tensor<T> read(const std::string& name, const Shape& expected) const;

 private:
  const SafeTensorsFile& shard(const std::string& name) const;
  std::string path_;
  std::vector<SafeTensorsFile> shards_;
  std::map<std::string, size_t> shard_of_;  // tensor → index into shards_
  std::map<std::string, std::string> index_metadata_;
};

extern template void ShardedSafeTensors::read_into<float>(const std::string&, const Shape&, std::span<float>) const;
extern template void ShardedSafeTensors::read_into<double>(const std::string&, const Shape&,
                                                           std::span<double>) const;
extern template Tensor<float> ShardedSafeTensors::read<float>(const std::string&, const Shape&) const;
extern template Tensor<double> ShardedSafeTensors::read<double>(const std::string&, const Shape&) const;

}  // namespace starflow::core::io
