// T5Config from config.json. The activation rule is transformers' T5Config.__init__: feed_forward_proj
// "[gated-]ACT" gives dense_act_fn = ACT and is_gated_act = (prefix is "gated"), "gated-gelu" meaning gelu_new
// for backwards compatibility; keys dense_act_fn / is_gated_act present in the file are then set over those
// (PretrainedConfig assigns leftover keys), which is why pre-2023 flan-t5 configs ("gelu" + is_gated_act) run the
// exact erf GELU.
#include "core/models/t5_config.h"

#include <optional>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "core/io/files.h"

namespace starflow::core {

namespace {

[[noreturn]] void fail_key(const std::string& source, const std::string& key, const std::string& problem) {
  throw std::runtime_error(source + ": key '" + io::printable(key) + "': " + io::printable(problem));
}

int64_t positive_int(const nlohmann::json& config, const std::string& source, const std::string& key,
                     std::optional<int64_t> fallback = std::nullopt) {
  const auto it = config.find(key);
  if (it == config.end()) {
    if (fallback) return *fallback;
    fail_key(source, key, "missing");
  }
  if (!it->is_number_integer() || it->get<int64_t>() <= 0)
    fail_key(source, key, "must be a positive integer, not " + it->dump());
  return it->get<int64_t>();
}

std::string string_value(const nlohmann::json& config, const std::string& source, const std::string& key,
                         const std::string& fallback) {
  const auto it = config.find(key);
  if (it == config.end()) return fallback;
  if (!it->is_string()) fail_key(source, key, "must be a string, not " + it->dump());
  return it->get<std::string>();
}

Activation parse_activation(const std::string& name, const std::string& source, const std::string& key) {
  if (name == "gelu_new") return Activation::kGeluTanh;
  if (name == "gelu") return Activation::kGeluErf;
  if (name == "relu") return Activation::kRelu;
  fail_key(source, key, "activation '" + io::printable(name) + "' is not supported (gelu_new, gelu, relu)");
}

}  // namespace

T5Config T5Config::from_json(const std::string& text, const std::string& source) {
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    throw std::runtime_error(source + ": not valid JSON: " + error.what());
  }
  if (!config.is_object()) throw std::runtime_error(source + ": not a JSON object");

  T5Config c;
  c.vocab_size = positive_int(config, source, "vocab_size");
  c.d_model = positive_int(config, source, "d_model");
  c.d_kv = positive_int(config, source, "d_kv");
  c.d_ff = positive_int(config, source, "d_ff");
  c.num_heads = positive_int(config, source, "num_heads");
  c.num_layers = positive_int(config, source, "num_layers");
  c.relative_attention_num_buckets = positive_int(config, source, "relative_attention_num_buckets", 32);
  c.relative_attention_max_distance = positive_int(config, source, "relative_attention_max_distance", 128);
  if (const auto it = config.find("layer_norm_epsilon"); it != config.end()) {
    if (!it->is_number() || !(it->get<double>() > 0)) fail_key(source, "layer_norm_epsilon", "must be a positive number");
    c.layer_norm_epsilon = it->get<double>();
  }

  const std::string proj = string_value(config, source, "feed_forward_proj", "relu");
  const size_t dash = proj.find('-');
  std::string act = proj;
  bool gated = false;
  if (dash != std::string::npos) {
    if (proj.substr(0, dash) != "gated" || proj.find('-', dash + 1) != std::string::npos)
      fail_key(source, "feed_forward_proj", "'" + io::printable(proj) + "' is not ACT or gated-ACT");
    act = proj.substr(dash + 1);
    gated = true;
  }
  if (proj == "gated-gelu") act = "gelu_new";  // transformers' backwards-compatibility rule
  if (config.contains("dense_act_fn")) act = string_value(config, source, "dense_act_fn", act);
  if (const auto it = config.find("is_gated_act"); it != config.end()) {
    if (!it->is_boolean()) fail_key(source, "is_gated_act", "must be true or false, not " + it->dump());
    gated = it->get<bool>();
  }
  c.activation = parse_activation(act, source, config.contains("dense_act_fn") ? "dense_act_fn" : "feed_forward_proj");
  c.gated = gated;
  // Bidirectional buckets: half per direction, half of those exact; the log-spaced rest spans up to max_distance.
  if (c.relative_attention_num_buckets < 4)
    fail_key(source, "relative_attention_num_buckets", "must be at least 4 (exact and log-spaced, each direction)");
  if (c.relative_attention_max_distance <= c.relative_attention_num_buckets / 4)
    fail_key(source, "relative_attention_max_distance", "must exceed relative_attention_num_buckets / 4");
  return c;
}

T5Config T5Config::from_file(const std::string& path) {
  const std::vector<uint8_t> bytes = io::read_file_bytes(path);
  return from_json(std::string(bytes.begin(), bytes.end()), path);
}

}  // namespace starflow::core
