// AutoencoderConfig: validation and the JSON form kept in the weights file's `config` metadata.
#include "core/models/autoencoder_config.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include "core/io/files.h"

namespace starflow::core {

namespace {

void require(bool ok, const std::string& key, const std::string& rule) {
  if (!ok) throw std::invalid_argument("autoencoder config key '" + io::printable(key) + "': " + io::printable(rule));
}

}  // namespace

void AutoencoderConfig::validate() const {
  require(image_channels > 0, "image_channels", "must be positive");
  require(latent_channels > 0, "latent_channels", "must be positive");
  require(channels.size() >= 2 && channels.size() <= 5, "channels",
          "must list 2 to 5 widths (full resolution, then one per 2x downsampling)");
  for (int64_t c : channels) require(c > 0, "channels", "every width must be positive");
  require(norm_groups > 0, "norm_groups", "must be positive");
  for (int64_t c : channels)
    require(c % norm_groups == 0, "norm_groups", "must divide every width (" + std::to_string(c) + ")");
  require(image_size > 0 && image_size % downsampling() == 0, "image_size",
          "must be a positive multiple of the downsampling factor " + std::to_string(downsampling()));
  require(mid_layers >= 0, "mid_layers", "must be >= 0");
  require(std::isfinite(scaling_factor) && scaling_factor > 0, "scaling_factor", "must be finite and positive");
  require(std::isfinite(shift_factor), "shift_factor", "must be finite");
}

std::string AutoencoderConfig::to_json() const {
  const nlohmann::json j = {{"architecture", "starflow-conv-autoencoder"},
                            {"image_channels", image_channels},
                            {"image_size", image_size},
                            {"latent_channels", latent_channels},
                            {"channels", channels},
                            {"norm_groups", norm_groups},
                            {"mid_layers", mid_layers},
                            {"downsampling", downsampling()},
                            {"latent_size", latent_size()},
                            {"scaling_factor", scaling_factor},
                            {"shift_factor", shift_factor}};
  return j.dump();
}

AutoencoderConfig AutoencoderConfig::from_json(const std::string& json_text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("autoencoder config is not valid JSON: ") + e.what());
  }
  require(j.is_object(), "config", "must be a JSON object");
  AutoencoderConfig c;
  int64_t downsampling = 0, latent_size = 0;
  for (auto& item : j.items()) {
    // Named references, not a structured binding: clang (the fuzz build) cannot capture bindings in lambdas
    // under OpenMP.
    const std::string& key = item.key();
    auto& value = item.value();
    auto as_int = [&] {
      require(value.is_number_integer(), key, "must be an integer");
      return value.get<int64_t>();
    };
    auto as_number = [&] {
      require(value.is_number(), key, "must be a number");
      return value.get<double>();
    };
    if (key == "architecture") require(value == "starflow-conv-autoencoder", key, "unknown architecture");
    else if (key == "image_channels") c.image_channels = as_int();
    else if (key == "image_size") c.image_size = as_int();
    else if (key == "latent_channels") c.latent_channels = as_int();
    else if (key == "channels") {
      require(value.is_array(), key, "must be a list of integers");
      c.channels.clear();
      for (auto& v : value) {
        require(v.is_number_integer(), key, "must be a list of integers");
        c.channels.push_back(v.get<int64_t>());
      }
    } else if (key == "norm_groups") c.norm_groups = as_int();
    else if (key == "mid_layers") c.mid_layers = as_int();
    else if (key == "downsampling") downsampling = as_int();
    else if (key == "latent_size") latent_size = as_int();
    else if (key == "scaling_factor") c.scaling_factor = as_number();
    else if (key == "shift_factor") c.shift_factor = as_number();
    else require(false, key, "unknown key");
  }
  c.validate();
  // The derived sizes are stored for readers of the file; they must agree with what we derive.
  require(downsampling == 0 || downsampling == c.downsampling(), "downsampling",
          "disagrees with 'channels' (" + std::to_string(c.downsampling()) + ")");
  require(latent_size == 0 || latent_size == c.latent_size(), "latent_size",
          "disagrees with image_size / downsampling (" + std::to_string(c.latent_size()) + ")");
  return c;
}

}  // namespace starflow::core
