// Official-name weight files.
#include "core/io/model_weights.h"

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
