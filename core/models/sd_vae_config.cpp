// SdVaeConfig: parsing a diffusers AutoencoderKL config.json and checking it describes what SdVae computes.
#include "core/models/sd_vae_config.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include "core/io/files.h"

namespace starflow::core {

namespace {

[[noreturn]] void fail(const std::string& source, const std::string& key, const std::string& problem) {
  throw std::invalid_argument(source + ": key '" + io::printable(key) + "': " + io::printable(problem));
}

void require(bool ok, const std::string& source, const std::string& key, const std::string& problem) {
  if (!ok) fail(source, key, problem);
}

// Keys diffusers writes that do not change what is computed here: bookkeeping, the training resolution's
// companions, and force_upcast (the VAE always runs in the backend's precision; float on the CPU).
bool is_informational(const std::string& key) {
  return key.starts_with("_") || key == "force_upcast";
}

}  // namespace

void SdVaeConfig::validate(const std::string& source) const {
  require(in_channels > 0, source, "in_channels", "must be positive");
  require(out_channels > 0, source, "out_channels", "must be positive");
  require(latent_channels > 0, source, "latent_channels", "must be positive");
  require(!block_out_channels.empty() && block_out_channels.size() <= 8, source, "block_out_channels",
          "must list 1 to 8 widths");
  require(layers_per_block > 0, source, "layers_per_block", "must be positive");
  require(norm_num_groups > 0, source, "norm_num_groups", "must be positive");
  for (int64_t c : block_out_channels) {
    require(c > 0, source, "block_out_channels", "every width must be positive");
    require(c % norm_num_groups == 0, source, "norm_num_groups",
            "must divide every width of block_out_channels (" + std::to_string(c) + ")");
  }
  require(sample_size > 0, source, "sample_size", "must be positive");
  require(std::isfinite(scaling_factor) && scaling_factor > 0, source, "scaling_factor", "must be finite and positive");
  require(std::isfinite(shift_factor), source, "shift_factor", "must be finite");
}

SdVaeConfig SdVaeConfig::from_json(const std::string& json_text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const std::exception& e) {
    throw std::invalid_argument(source + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw std::invalid_argument(source + ": not a JSON object");
  SdVaeConfig c;
  bool have_down = false, have_up = false;
  size_t down_blocks = 0, up_blocks = 0;
  for (auto& item : j.items()) {
    // Named references, not a structured binding: clang (the fuzz build) cannot capture bindings in lambdas
    // under OpenMP.
    const std::string& key = item.key();
    auto& value = item.value();
    auto as_int = [&] {
      require(value.is_number_integer(), source, key, "must be an integer");
      return value.get<int64_t>();
    };
    auto as_number = [&] {
      require(value.is_number(), source, key, "must be a number");
      return value.get<double>();
    };
    // A list of block types, each of which must be `expected`.
    auto block_types = [&](const char* expected) {
      require(value.is_array() && !value.empty(), source, key, "must be a non-empty list of block types");
      for (auto& v : value)
        require(v == expected, source, key,
                "only " + std::string(expected) + " is implemented, found " + v.dump());
      return value.size();
    };
    // A switch this implementation only supports at its default.
    auto must_be_true = [&] {
      require(value.is_boolean() && value.get<bool>(), source, key,
              "only true (the sd-vae-ft-ema architecture) is implemented");
    };
    if (is_informational(key)) continue;
    if (key == "in_channels") c.in_channels = as_int();
    else if (key == "out_channels") c.out_channels = as_int();
    else if (key == "latent_channels") c.latent_channels = as_int();
    else if (key == "layers_per_block") c.layers_per_block = as_int();
    else if (key == "norm_num_groups") c.norm_num_groups = as_int();
    else if (key == "sample_size") {
      // diffusers allows [H, W]; only the size matters for nothing computed here, so take the first.
      if (value.is_array() && !value.empty() && value[0].is_number_integer()) c.sample_size = value[0].get<int64_t>();
      else c.sample_size = as_int();
    } else if (key == "block_out_channels") {
      require(value.is_array(), source, key, "must be a list of integers");
      c.block_out_channels.clear();
      for (auto& v : value) {
        require(v.is_number_integer(), source, key, "must be a list of integers");
        c.block_out_channels.push_back(v.get<int64_t>());
      }
    } else if (key == "act_fn") {
      require(value == "silu", source, key, "only \"silu\" is implemented, found " + value.dump());
    } else if (key == "down_block_types") {
      down_blocks = block_types("DownEncoderBlock2D");
      have_down = true;
    } else if (key == "up_block_types") {
      up_blocks = block_types("UpDecoderBlock2D");
      have_up = true;
    } else if (key == "scaling_factor") c.scaling_factor = as_number();
    else if (key == "shift_factor") c.shift_factor = value.is_null() ? 0.0 : as_number();
    else if (key == "use_quant_conv" || key == "use_post_quant_conv" || key == "mid_block_add_attention") must_be_true();
    else if (key == "latents_mean" || key == "latents_std") {
      require(value.is_null(), source, key, "per-channel latent statistics are not implemented (must be null)");
    } else {
      fail(source, key, "unknown AutoencoderKL setting");
    }
  }
  // diffusers fills absent keys from AutoencoderKL's own defaults (one 64-wide block, ...), which describe no
  // released checkpoint: a config.json without the architecture keys is refused rather than guessed at.
  for (const char* key :
       {"in_channels", "out_channels", "latent_channels", "block_out_channels", "layers_per_block", "norm_num_groups"})
    require(j.contains(key), source, key, "missing (the architecture keys of AutoencoderKL must all be given)");
  const size_t n = c.block_out_channels.size();
  require(!have_down || down_blocks == n, source, "down_block_types",
          "lists " + std::to_string(down_blocks) + " blocks, block_out_channels " + std::to_string(n));
  require(!have_up || up_blocks == n, source, "up_block_types",
          "lists " + std::to_string(up_blocks) + " blocks, block_out_channels " + std::to_string(n));
  c.validate(source);
  return c;
}

SdVaeConfig SdVaeConfig::sd_vae_ft_ema() {
  SdVaeConfig c;  // the defaults above are sd-vae-ft-ema's config.json
  return c;
}

}  // namespace starflow::core
