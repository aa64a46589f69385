// Official-key JSON parsing and validation of FlowConfig.
#include "core/models/flow_config.h"

#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include "core/io/files.h"

namespace starflow::core {
namespace {

void require(bool ok, const std::string& key, const std::string& rule) {
  if (!ok) throw std::invalid_argument("config key '" + io::printable(key) + "': " + io::printable(rule));
}

// Keys of the official Model(...) that must hold a fixed value here, because the STARFlow image model
// (and every config of the spec) uses that value and the alternative is not implemented.
struct FixedKey {
  const char* key;
  nlohmann::json required;
};

}  // namespace

void FlowConfig::validate() const {
  require(in_channels > 0, "in_channels", "must be positive");
  require(patch_size > 0, "patch_size", "must be positive");
  require(img_size > 0 && img_size % patch_size == 0, "img_size", "must be a positive multiple of patch_size");
  require(num_blocks > 0, "num_blocks", "must be positive");
  require(static_cast<int64_t>(layers_per_block.size()) == num_blocks, "layers_per_block",
          "must list one layer count per block (num_blocks = " + std::to_string(num_blocks) + ")");
  for (int64_t l : layers_per_block) require(l >= 1, "layers_per_block", "every block needs at least one layer");
  require(head_dim > 0 && channels > 0 && channels % head_dim == 0, "channels",
          "must be a positive multiple of head_dim (" + std::to_string(head_dim) + ")");
  if (txt_size > 0) {
    require(head_dim / 2 - 8 > 0 && (head_dim / 2 - 8) % 2 == 0 && head_dim % 2 == 0, "head_dim",
            "with a conditioning prefix head_dim/2 − 8 must be positive and even (20, 24, 28, 32, ...)");
    require(txt_dim > 0, "txt_dim", "must be positive when txt_size > 0");
  } else {
    require(head_dim % 4 == 0, "head_dim", "must be divisible by 4 for 2-D RoPE");
    require(txt_dim == 0, "txt_dim", "must be 0 when txt_size is 0");
  }
  require(soft_clip >= 0, "soft_clip", "must be >= 0");
  require(pt_seq_len >= 0, "pt_seq_len", "must be >= 0 (0 = img_size/patch_size)");
}

FlowConfig FlowConfig::from_official_json(const std::string& json_text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("config is not valid JSON: ") + e.what());
  }
  require(j.is_object(), "config", "must be a JSON object");
  static const FixedKey fixed[] = {
      {"rope", true}, {"sos", true}, {"use_swiglu", false}, {"use_bias", true}, {"use_qk_norm", false},
      {"use_post_norm", false}, {"hf_style_rope", false}, {"norm_type", "layer_norm"}, {"use_mm_attn", false},
      {"learnable_self_denoiser", false}, {"conditional_denoiser", false}, {"temporal_causal", 0},
      {"shallow_block_local", false}};
  // Keys with no effect on the computation (checkpointing flags, deprecated or video-only options).
  static const std::set<std::string> ignored = {
      "use_checkpoint", "use_checkpoint_mlp", "use_pretrained_lm", "denoiser_window", "local_attn_window",
      "top_block_channels", "num_kv_heads"};
  FlowConfig c;
  for (auto& item : j.items()) {
    // Named references, not a structured binding: clang (the fuzz build) cannot capture bindings in lambdas
    // under OpenMP.
    const std::string& key = item.key();
    auto& value = item.value();
    auto as_int = [&] {
      require(value.is_number_integer(), key, "must be an integer");
      return value.get<int64_t>();
    };
    auto as_bool = [&] {
      require(value.is_boolean() || value.is_number_integer(), key, "must be a boolean");
      return value.is_boolean() ? value.get<bool>() : value.get<int64_t>() != 0;
    };
    if (key == "in_channels") c.in_channels = as_int();
    else if (key == "img_size") c.img_size = as_int();
    else if (key == "patch_size") c.patch_size = as_int();
    else if (key == "channels") c.channels = as_int();
    else if (key == "num_blocks") c.num_blocks = as_int();
    else if (key == "layers_per_block") {
      require(value.is_array(), key, "must be a list of integers");
      c.layers_per_block.clear();
      for (auto& v : value) {
        require(v.is_number_integer(), key, "must be a list of integers");
        c.layers_per_block.push_back(v.get<int64_t>());
      }
    } else if (key == "head_dim") c.head_dim = as_int();
    else if (key == "num_heads") {
      if (!value.is_null()) c.head_dim = -as_int();  // resolved below, once channels is known
    } else if (key == "txt_size") c.txt_size = value.is_null() ? 0 : as_int();
    else if (key == "txt_dim") c.txt_dim = value.is_null() ? 0 : as_int();
    else if (key == "cond_top_only") c.cond_top_only = as_bool();
    else if (key == "soft_clip") {
      require(value.is_number(), key, "must be a number");
      c.soft_clip = value.get<double>();
    } else if (key == "seq_order") {
      require(value == "L2R" || value == "R2L", key, "must be \"L2R\" or \"R2L\"");
      c.seq_order = value == "L2R" ? SeqOrder::L2R : SeqOrder::R2L;
    } else if (key == "use_softplus") c.use_softplus = as_bool();
    else if (key == "use_final_norm") c.use_final_norm = as_bool();
    else if (key == "pt_seq_len") c.pt_seq_len = value.is_null() ? 0 : as_int();
    else if (ignored.count(key)) continue;
    else {
      bool known = false;
      for (const FixedKey& f : fixed)
        if (key == f.key) {
          known = true;
          const bool same = value == f.required || (f.required.is_boolean() && value.is_number_integer() &&
                                                    (value.get<int64_t>() != 0) == f.required.get<bool>());
          require(same, key, "only " + f.required.dump() + " is supported");
        }
      require(known, key, "unknown key");
    }
  }
  if (j.contains("num_heads") && !j["num_heads"].is_null()) {
    const int64_t heads = -c.head_dim;
    require(heads > 0 && c.channels % heads == 0, "num_heads", "must divide channels");
    c.head_dim = c.channels / heads;
  }
  c.validate();
  return c;
}

std::string FlowConfig::to_official_json() const {
  nlohmann::json j = {{"in_channels", in_channels}, {"img_size", img_size}, {"patch_size", patch_size},
                      {"channels", channels}, {"num_blocks", num_blocks}, {"layers_per_block", layers_per_block},
                      {"head_dim", head_dim}, {"txt_size", txt_size}, {"txt_dim", txt_dim},
                      {"cond_top_only", cond_top_only}, {"soft_clip", soft_clip},
                      {"seq_order", seq_order == SeqOrder::L2R ? "L2R" : "R2L"}, {"use_softplus", use_softplus},
                      {"use_final_norm", use_final_norm}, {"rope", true}, {"sos", true}};
  if (pt_seq_len > 0) j["pt_seq_len"] = pt_seq_len;
  return j.dump();
}

}  // namespace starflow::core
