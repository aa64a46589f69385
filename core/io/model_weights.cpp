// Official-name weight files.
#include "core/io/model_weights.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

namespace starflow::core::io {

FlowConfig read_config(const SafeTensorsFile& file) {
  try {
    return FlowConfig::from_official_json(file.metadata_value("config"));
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(file.path() + ": metadata 'config': " + e.what());
  }
}

template <class T>
void load_weights(const ParameterLayout& layout, T* parameters, const SafeTensorsFile& file) {
  for (const ParameterView& v : layout.views()) {
    const std::string name = file.has(v.name) || !file.has("param." + v.name) ? v.name : "param." + v.name;
    const Tensor<T> t = file.read<T>(name, v.global_shape);
    extract_shard(v, t.data.data(), parameters + v.offset);  // this rank's part under TP
  }
}

template <class T>
void load_weights(StarFlowModel<T>& model, const SafeTensorsFile& file) {
  load_weights(model.layout(), model.parameters().data(), file);
}

std::vector<OfficialBuffer> official_buffers(const FlowConfig& cfg) {
  // Their shapes follow pt_seq_len, not the grid (golden README): P² image positions, L text positions.
  const int64_t P2 = cfg.rope_seq_len() * cfg.rope_seq_len(), L = cfg.txt_size, S = P2 + L;
  const int64_t D = cfg.in_channels * cfg.patch_size * cfg.patch_size;
  std::vector<OfficialBuffer> out;
  out.push_back({"var", {P2, D}, std::vector<float>(static_cast<size_t>(P2 * D), 1.f)});
  for (int64_t k = 0; k < cfg.num_blocks; ++k) {
    if (cfg.block_is_identity(k)) continue;  // an IdentityBlock has no buffers either
    OfficialBuffer mask{"blocks." + std::to_string(k) + ".attn_mask", {S, S}, std::vector<float>(S * S, 0.f)};
    for (int64_t i = 0; i < S; ++i) std::fill_n(mask.values.begin() + i * S, i + 1, 1.f);  // lower-triangular ones
    out.push_back(std::move(mask));
  }
  for (const char* name : {"feat_rope.freqs_cos", "feat_rope.freqs_sin"})
    out.push_back({name, {S, cfg.head_dim}, std::vector<float>(static_cast<size_t>(S * cfg.head_dim), 0.f)});
  return out;
}

template <class T>
void save_weights(const StarFlowModel<T>& model, const std::string& path, std::map<std::string, std::string> metadata) {
  if (model.layout().sharded())
    throw std::logic_error(path + ": save_weights needs the whole model, not a tensor-parallel shard of it");
  std::vector<std::vector<float>> data;
  std::vector<TensorToWrite> tensors;
  data.reserve(model.layout().views().size());
  for (const ParameterView& v : model.layout().views()) {
    const T* p = model.parameters().data() + v.offset;
    data.emplace_back(p, p + v.size);
    tensors.push_back({v.name, "F32", v.shape, data.back().data(), data.back().size() * sizeof(float)});
  }
  // The official model's deprecated buffers, so that its load_state_dict(strict=True) accepts the file.
  const std::vector<OfficialBuffer> buffers = official_buffers(model.config());
  for (const OfficialBuffer& b : buffers)
    tensors.push_back({b.name, "F32", b.shape, b.values.data(), b.values.size() * sizeof(float)});
  metadata["config"] = model.config().to_official_json();
  metadata["format"] = "starflow-weights-v1";
  write_safetensors(path, tensors, metadata);
}

template void load_weights<float>(const ParameterLayout&, float*, const SafeTensorsFile&);
template void load_weights<double>(const ParameterLayout&, double*, const SafeTensorsFile&);
template void load_weights<float>(StarFlowModel<float>&, const SafeTensorsFile&);
template void load_weights<double>(StarFlowModel<double>&, const SafeTensorsFile&);
template void save_weights<float>(const StarFlowModel<float>&, const std::string&, std::map<std::string, std::string>);
template void save_weights<double>(const StarFlowModel<double>&, const std::string&,
                                   std::map<std::string, std::string>);

}  // namespace starflow::core::io
