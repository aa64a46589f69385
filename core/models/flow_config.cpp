// Official-key JSON parsing and validation of FlowConfig.
#include "core/models/flow_config.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/io/files.h"

namespace starflow::core {
namespace {

void require(bool ok, const std::string& key, const std::string& rule) {
  if (!ok) throw std::invalid_argument("config key '" + io::printable(key) + "': " + io::printable(rule));
}

// Keys of the official Model(...) that its code cannot instantiate (golden README §7.1): refused when set.
struct BrokenKey {
  const char* key;
  nlohmann::json works;  // the one value that works
  const char* reason;
};
const BrokenKey kBroken[] = {
    {"rope", true,
     "only true is supported: the official learned pos_embed (rope false) crashes in forward and reverse "
     "(a 4-D rearrange of a 2-D tensor), so no official model can have been trained with it"},
    {"use_pretrained_lm", nullptr,
     "only null is supported: the official MetaBlock rejects the keyword use_adaln it is passed with "
     "(TypeError), and no LM weights are loaded anywhere"},
};

// Keys with no effect on an image model's computation (checkpointing, video-only options, keywords the
// official Model swallows): accepted, with a notice when set to something other than their no-op value.
const char* const kDead[] = {"use_checkpoint",  "use_checkpoint_mlp", "use_mm_attn",      "temporal_causal",
                             "shallow_block_local", "local_attn_window", "denoiser_window", "noise_embed_denoiser"};

bool truthy(const nlohmann::json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return v.get<double>() != 0;
  return true;
}

}  // namespace

void FlowConfig::validate() const {
  require(in_channels > 0, "in_channels", "must be positive");
  require(patch_size > 0, "patch_size", "must be positive");
  require(img_size > 0 && img_size % patch_size == 0, "img_size", "must be a positive multiple of patch_size");
  require(num_blocks > 0, "num_blocks", "must be positive");
  require(static_cast<int64_t>(layers_per_block.size()) == num_blocks, "layers_per_block",
          "must list one layer count per block (num_blocks = " + std::to_string(num_blocks) + ")");
  for (int64_t l : layers_per_block) require(l >= 0, "layers_per_block", "layer counts must be >= 0");
  require(layers_per_block.back() >= 1, "layers_per_block",
          "the deep (last) block needs at least one layer (a 0 is an identity block only for the shallow blocks)");
  require(head_dim > 0 && head_dim % 2 == 0, "head_dim", "must be positive and even");
  require(channels > 0, "channels", "must be positive");
  require(top_block_channels >= 0, "top_block_channels", "must be positive (or null: channels)");
  require(attention_heads >= 0, "num_heads", "must be positive (or null: width / head_dim)");
  require(kv_heads >= 0, "num_kv_heads", "must be positive (or null: num_heads)");
  for (int64_t k = 0; k < num_blocks; ++k) {
    const int64_t width = block_channels(k);
    if (attention_heads == 0)
      require(width % head_dim == 0, k == num_blocks - 1 && top_block_channels > 0 ? "top_block_channels" : "channels",
              "must be a multiple of head_dim (" + std::to_string(head_dim) + ") when num_heads is not given");
    require(block_heads(k) % block_kv_heads(k) == 0, "num_kv_heads",
            "must divide the query heads (" + std::to_string(block_heads(k)) + ")");
  }
  if (learnable_self_denoiser && attention_heads == 0)
    require(channels % head_dim == 0, "channels", "must be a multiple of head_dim for the learnable denoiser");
  if (txt_size > 0) {
    require(head_dim / 2 - 8 > 0 && (head_dim / 2 - 8) % 2 == 0, "head_dim",
            "with a conditioning prefix head_dim/2 − 8 must be positive and even (20, 24, 28, 32, ...)");
    require(txt_dim > 0, "txt_dim", "must be positive when txt_size > 0");
  } else {
    require(head_dim % 4 == 0, "head_dim", "must be divisible by 4 for 2-D RoPE");
    require(txt_dim == 0, "txt_dim", "must be 0 when txt_size is 0");
  }
  require(soft_clip >= 0, "soft_clip", "must be >= 0");
  if (learnable_self_denoiser && conditional_denoiser)
    require(txt_size > 0, "conditional_denoiser", "needs a conditioning prefix (txt_size > 0)");
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
  FlowConfig c;
  std::vector<std::string> notices;
  for (auto& item : j.items()) {
    // Named references, not a structured binding: clang (the fuzz build) cannot capture bindings in lambdas
    // under OpenMP.
    const std::string& key = item.key();
    auto& value = item.value();
    auto as_int = [&] {
      require(value.is_number_integer(), key, "must be an integer");
      return value.get<int64_t>();
    };
    auto as_optional_int = [&] { return value.is_null() ? int64_t(0) : as_int(); };
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
      c.attention_heads = as_optional_int();
      require(value.is_null() || c.attention_heads > 0, key, "must be positive (or null)");
    } else if (key == "num_kv_heads") {
      c.kv_heads = as_optional_int();
      require(value.is_null() || c.kv_heads > 0, key, "must be positive (or null)");
    } else if (key == "top_block_channels") {
      c.top_block_channels = as_optional_int();
      require(value.is_null() || c.top_block_channels > 0, key, "must be positive (or null)");
    } else if (key == "txt_size") c.txt_size = as_optional_int();
    else if (key == "txt_dim") c.txt_dim = as_optional_int();
    else if (key == "cond_top_only") c.cond_top_only = as_bool();
    else if (key == "soft_clip") {
      require(value.is_number(), key, "must be a number");
      c.soft_clip = value.get<double>();
    } else if (key == "seq_order") {
      require(value == "L2R" || value == "R2L", key, "must be \"L2R\" or \"R2L\"");
      c.seq_order = value == "L2R" ? SeqOrder::L2R : SeqOrder::R2L;
    } else if (key == "use_softplus") c.use_softplus = as_bool();
    else if (key == "use_final_norm") c.use_final_norm = as_bool();
    else if (key == "pt_seq_len") c.pt_seq_len = as_optional_int();
    else if (key == "sos") c.sos = as_bool();
    else if (key == "use_swiglu") c.use_swiglu = as_bool();
    else if (key == "use_qk_norm") c.use_qk_norm = as_bool();
    else if (key == "use_post_norm") c.use_post_norm = as_bool();
    else if (key == "use_bias") c.use_bias = as_bool();
    else if (key == "hf_style_rope") c.hf_style_rope = as_bool();
    else if (key == "learnable_self_denoiser") c.learnable_self_denoiser = as_bool();
    else if (key == "conditional_denoiser") c.conditional_denoiser = as_bool();
    else if (key == "norm_type") {
      require(value.is_string(), key, "must be a string");
      // As the official code: anything but the two norm names means no pre-norm at all.
      const std::string n = value.get<std::string>();
      c.norm_type = n == "layer_norm" ? NormType::kLayerNorm : n == "rms_norm" ? NormType::kRmsNorm : NormType::kNone;
    } else {
      bool known = false;
      for (const BrokenKey& b : kBroken)
        if (key == b.key) {
          known = true;
          const bool works = value == b.works || (value.is_null() && b.works.is_null()) ||
                             (b.works.is_boolean() && value.is_number_integer() &&
                              (value.get<int64_t>() != 0) == b.works.get<bool>());
          require(works, key, b.reason);
        }
      for (const char* d : kDead)
        if (key == d) {
          known = true;
          if (truthy(value)) notices.push_back(key + " = " + value.dump());
        }
      require(known, key, "unknown key");
    }
  }
  // The official constructor's assertions on the video switches, which are otherwise without effect here.
  auto set = [&](const char* key) { return j.contains(key) && truthy(j[key]); };
  if (set("local_attn_window")) require(set("shallow_block_local"), "local_attn_window", "needs shallow_block_local");
  if (set("shallow_block_local"))
    require(c.cond_top_only && c.txt_size > 0, "shallow_block_local", "needs cond_top_only and txt_size > 0");
  if (set("temporal_causal")) require(c.seq_order == SeqOrder::L2R, "temporal_causal", "needs seq_order L2R");
  if (!notices.empty()) {
    std::string line;
    for (const std::string& n : notices) line += (line.empty() ? "" : ", ") + io::printable(n);
    std::fprintf(stderr, "starflow: config keys without effect on an image model, ignored: %s\n", line.c_str());
  }
  c.validate();
  return c;
}

std::string FlowConfig::to_official_json() const {
  auto optional = [](int64_t v) { return v > 0 ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json j = {{"in_channels", in_channels}, {"img_size", img_size}, {"patch_size", patch_size},
                      {"channels", channels}, {"num_blocks", num_blocks}, {"layers_per_block", layers_per_block},
                      {"head_dim", head_dim}, {"txt_size", txt_size}, {"txt_dim", txt_dim},
                      {"cond_top_only", cond_top_only}, {"soft_clip", soft_clip},
                      {"seq_order", seq_order == SeqOrder::L2R ? "L2R" : "R2L"}, {"use_softplus", use_softplus},
                      {"use_final_norm", use_final_norm}, {"rope", true}, {"sos", sos}};
  if (pt_seq_len > 0) j["pt_seq_len"] = pt_seq_len;
  // The switches only when set, so that files of the released configurations keep their config text.
  if (norm_type != NormType::kLayerNorm) j["norm_type"] = norm_type == NormType::kRmsNorm ? "rms_norm" : "none";
  if (use_swiglu) j["use_swiglu"] = true;
  if (use_qk_norm) j["use_qk_norm"] = true;
  if (use_post_norm) j["use_post_norm"] = true;
  if (!use_bias) j["use_bias"] = false;
  if (hf_style_rope) j["hf_style_rope"] = true;
  if (attention_heads > 0) j["num_heads"] = optional(attention_heads);
  if (kv_heads > 0) j["num_kv_heads"] = optional(kv_heads);
  if (top_block_channels > 0) j["top_block_channels"] = optional(top_block_channels);
  if (learnable_self_denoiser) j["learnable_self_denoiser"] = true;
  if (conditional_denoiser) j["conditional_denoiser"] = true;
  return j.dump();
}

}  // namespace starflow::core
