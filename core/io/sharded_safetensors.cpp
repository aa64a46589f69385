// ShardedSafeTensors: the index is parsed and every shard it names is opened (mapped, header checked) up front,
// so a missing shard fails at open, not in the middle of loading a model.
#include "core/io/sharded_safetensors.h"

#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "core/io/files.h"

namespace starflow::core::io {

namespace fs = std::filesystem;

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

std::string quoted(const std::string& name) {
  std::string text = "'";  // appended piecewise: GCC 12 warns falsely (-Wrestrict) on "'" + string&&
  text += printable(name);
  return text + "'";
}

nlohmann::json parse_index(const std::string& index_path) {
  const std::vector<uint8_t> bytes = read_file_bytes(index_path);
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::exception& error) {
    fail_file(index_path, std::string("not valid JSON: ") + error.what());
  }
  if (!index.is_object()) fail_file(index_path, "not a JSON object");
  const auto map = index.find("weight_map");
  if (map == index.end() || !map->is_object() || map->empty())
    fail_file(index_path, "no 'weight_map' object mapping tensor names to shard files");
  return index;
}

}  // namespace

ShardedSafeTensors ShardedSafeTensors::open(const std::string& path) {
  ShardedSafeTensors out;
  std::error_code ec;
  std::string index_path;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / kIndexName, ec)) index_path = (fs::path(path) / kIndexName).string();
    else if (fs::exists(fs::path(path) / kSingleName, ec)) out.path_ = (fs::path(path) / kSingleName).string();
    else fail_file(path, std::string("neither ") + kIndexName + " nor " + kSingleName + " in this directory");
  } else if (fs::path(path).extension() == ".json") {
    index_path = path;
  } else {
    out.path_ = path;
  }

  if (index_path.empty()) {  // one file holds everything
    out.shards_.push_back(SafeTensorsFile::open(out.path_));
    for (const std::string& name : out.shards_[0].names()) out.shard_of_[name] = 0;
    return out;
  }

  out.path_ = index_path;
  const nlohmann::json index = parse_index(index_path);
  if (const auto meta = index.find("metadata"); meta != index.end() && meta->is_object())
    for (const auto& [key, value] : meta->items()) out.index_metadata_[key] = value.is_string() ? value.get<std::string>() : value.dump();
  // Shards are opened in the order the index first names them; each once, however many tensors it holds.
  std::map<std::string, size_t> opened;
  const fs::path folder = fs::path(index_path).parent_path();
  for (const auto& [name, file] : index.at("weight_map").items()) {
    if (!file.is_string() || file.get<std::string>().empty())
      fail_file(index_path, "weight_map entry for tensor " + quoted(name) + " is not a file name");
    const std::string shard = file.get<std::string>();
    auto it = opened.find(shard);
    if (it == opened.end()) {
      const fs::path shard_path = folder / shard;
      if (!fs::is_regular_file(shard_path, ec))
        fail_file(index_path, "shard " + quoted(shard) + " (holding tensor " + quoted(name) + ") is missing: no file " +
                                  shard_path.string());
      it = opened.emplace(shard, out.shards_.size()).first;
      out.shards_.push_back(SafeTensorsFile::open(shard_path.string()));
    }
    out.shard_of_[name] = it->second;
  }
  return out;
}

std::vector<std::string> ShardedSafeTensors::names() const {
  std::vector<std::string> names;
  names.reserve(shard_of_.size());
  for (const auto& entry : shard_of_) names.push_back(entry.first);
  return names;
}

const SafeTensorsFile& ShardedSafeTensors::shard(const std::string& name) const {
  const auto it = shard_of_.find(name);
  if (it == shard_of_.end()) fail_file(path_, "no tensor " + quoted(name));
  return shards_[it->second];
}

const std::string& ShardedSafeTensors::shard_path(const std::string& name) const { return shard(name).path(); }

const TensorInfo& ShardedSafeTensors::info(const std::string& name) const {
  const SafeTensorsFile& file = shard(name);
  // An index that promises a tensor its shard lacks: name both, the shard first (it is the file to look at).
  if (!file.has(name)) fail_file(file.path(), "no tensor " + quoted(name) + " (" + path_ + " maps it to this file)");
  return file.info(name);
}

template <class T>
void ShardedSafeTensors::read_into(const std::string& name, const Shape& expected, std::span<T> out) const {
  const TensorInfo& tensor = info(name);
  static const std::set<std::string> kFloatDtypes = {"F32", "F16", "BF16", "F64"};
  if (!kFloatDtypes.count(tensor.dtype))
    fail_file(shard(name).path(), "tensor " + quoted(name) + " has dtype " + tensor.dtype +
                                      "; a weight must be F32, F16, BF16 or F64");
  shard(name).read_into<T>(name, expected, out);
}

template <class T>
Tensor<T> ShardedSafeTensors::read(const std::string& name, const Shape& expected) const {
  Tensor<T> out(expected);
  read_into<T>(name, expected, std::span<T>(out.data));
  return out;
}

template void ShardedSafeTensors::read_into<float>(const std::string&, const Shape&, std::span<float>) const;
template void ShardedSafeTensors::read_into<double>(const std::string&, const Shape&, std::span<double>) const;
template Tensor<float> ShardedSafeTensors::read<float>(const std::string&, const Shape&) const;
template Tensor<double> ShardedSafeTensors::read<double>(const std::string&, const Shape&) const;

}  // namespace starflow::core::io
