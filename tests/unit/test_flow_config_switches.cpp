// The official model's optional switches in FlowConfig (golden README §7.1): each parsed to what it computes,
// the ones the official code cannot instantiate refused with the reason, the dead ones accepted.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "core/models/flow_config.h"

using starflow::core::FlowConfig;
using starflow::core::NormType;

namespace {

const std::string kBase = R"("in_channels": 4, "img_size": 8, "patch_size": 1, "channels": 64, "num_blocks": 3,
  "layers_per_block": [1, 1, 2], "head_dim": 32, "txt_size": 4, "txt_dim": 16)";

FlowConfig parse(const std::string& extra) { return FlowConfig::from_official_json("{" + kBase + extra + "}"); }

std::string error_of(const std::string& extra) {
  try {
    parse(extra);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(FlowConfigSwitches, EachSwitchIsParsed) {
  const FlowConfig c = parse(R"(, "num_heads": 4, "num_kv_heads": 2, "use_swiglu": true, "use_qk_norm": 1,
      "use_post_norm": true, "use_bias": false, "hf_style_rope": true, "norm_type": "rms_norm", "sos": false,
      "top_block_channels": 128, "learnable_self_denoiser": true, "conditional_denoiser": true)");
  EXPECT_EQ(c.block_heads(0), 4);
  EXPECT_EQ(c.block_kv_heads(2), 2);
  EXPECT_EQ(c.block_channels(0), 64);
  EXPECT_EQ(c.block_channels(2), 128);
  EXPECT_TRUE(c.use_swiglu && c.use_qk_norm && c.use_post_norm && c.hf_style_rope && c.learnable_self_denoiser);
  EXPECT_FALSE(c.use_bias || c.sos);
  EXPECT_EQ(c.norm_type, NormType::kRmsNorm);
  // Without num_heads a wider top block gets width / head_dim heads.
  EXPECT_EQ(parse(R"(, "top_block_channels": 128)").block_heads(2), 4);
  // Any norm name but the two drops the pre-norms, as the official code does.
  EXPECT_EQ(parse(R"(, "norm_type": "none")").norm_type, NormType::kNone);
  // A 0 in layers_per_block is an identity block for a shallow block only.
  EXPECT_TRUE(parse(R"(, "layers_per_block": [1, 0, 2])").block_is_identity(1));
  EXPECT_NE(error_of(R"(, "layers_per_block": [1, 1, 0])").find("layers_per_block"), std::string::npos);
}

TEST(FlowConfigSwitches, BrokenSwitchesAreRefusedWithTheReason) {
  EXPECT_NE(error_of(R"(, "rope": false)").find("pos_embed"), std::string::npos);
  EXPECT_NE(error_of(R"(, "use_pretrained_lm": "gemma3_1b")").find("use_adaln"), std::string::npos);
  EXPECT_NE(error_of(R"(, "num_heads": 3, "num_kv_heads": 2)").find("num_kv_heads"), std::string::npos);
  EXPECT_NE(error_of(R"(, "use_swigl": true)").find("unknown key"), std::string::npos);
  EXPECT_NE(error_of(R"(, "temporal_causal": 1, "seq_order": "R2L")").find("temporal_causal"), std::string::npos);
  EXPECT_EQ(error_of(R"(, "rope": true, "use_pretrained_lm": null)"), "");
}

TEST(FlowConfigSwitches, DeadSwitchesAreAccepted) {
  const FlowConfig c = parse(R"(, "use_mm_attn": true, "use_checkpoint": 1, "use_checkpoint_mlp": true,
      "noise_embed_denoiser": true, "denoiser_window": 4)");
  EXPECT_EQ(c.to_official_json(), parse("").to_official_json());
}
