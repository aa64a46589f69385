// Autoencoder weight files.
#include "core/io/autoencoder_weights.h"

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "core/io/float16.h"

namespace starflow::core::io {

AutoencoderConfig read_autoencoder_config(const SafeTensorsFile& file) {
  try {
    return AutoencoderConfig::from_json(file.metadata_value("config"));
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(file.path() + ": metadata 'config': " + e.what());
  }
}

template <class T>
void load_autoencoder_weights(Autoencoder<T>& model, const SafeTensorsFile& file) {
  for (const ParameterView& v : model.layout().views()) {
    const Tensor<T> t = file.read<T>(v.name, v.shape);
    std::copy(t.data.begin(), t.data.end(), model.parameters().begin() + v.offset);
  }
}

template <class T>
Autoencoder<T> load_autoencoder(const std::string& path) {
  const SafeTensorsFile file = SafeTensorsFile::open(path);
  Autoencoder<T> model(read_autoencoder_config(file));
  load_autoencoder_weights(model, file);
  return model;
}

template <class T>
void save_autoencoder(const Autoencoder<T>& model, const std::string& path, const std::string& dtype,
                      std::map<std::string, std::string> metadata) {
  if (dtype != "F32" && dtype != "F16")
    throw std::invalid_argument(path + ": autoencoder weights dtype must be F32 or F16, not '" + dtype + "'");
  const bool half = dtype == "F16";
  std::vector<std::vector<float>> floats;
  std::vector<std::vector<uint16_t>> halves;
  std::vector<TensorToWrite> tensors;
  floats.reserve(model.layout().views().size());
  halves.reserve(model.layout().views().size());
  for (const ParameterView& v : model.layout().views()) {
    const T* p = model.parameters().data() + v.offset;
    if (half) {
      std::vector<uint16_t>& h = halves.emplace_back(static_cast<size_t>(v.size));
      for (int64_t i = 0; i < v.size; ++i) h[i] = float_to_half_bits(static_cast<float>(p[i]));
      tensors.push_back({v.name, "F16", v.shape, h.data(), h.size() * sizeof(uint16_t)});
    } else {
      const std::vector<float>& f = floats.emplace_back(p, p + v.size);
      tensors.push_back({v.name, "F32", v.shape, f.data(), f.size() * sizeof(float)});
    }
  }
  metadata["config"] = model.config().to_json();
  metadata["format"] = "starflow-autoencoder-v1";
  write_safetensors(path, tensors, metadata);
}

template void load_autoencoder_weights<float>(Autoencoder<float>&, const SafeTensorsFile&);
template void load_autoencoder_weights<double>(Autoencoder<double>&, const SafeTensorsFile&);
template Autoencoder<float> load_autoencoder<float>(const std::string&);
template Autoencoder<double> load_autoencoder<double>(const std::string&);
template void save_autoencoder<float>(const Autoencoder<float>&, const std::string&, const std::string&,
                                      std::map<std::string, std::string>);
template void save_autoencoder<double>(const Autoencoder<double>&, const std::string&, const std::string&,
                                       std::map<std::string, std::string>);

}  // namespace starflow::core::io
