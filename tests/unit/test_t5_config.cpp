// T5Config from config.json: flan-t5-xl's current config (gated-gelu ⇒ gated gelu_new), its pre-2023 revision
// (gelu + is_gated_act ⇒ gated exact GELU), the original T5's relu, explicit keys overriding feed_forward_proj,
// defaults, and one-line errors naming the key.
#include <gtest/gtest.h>

#include <string>

#include "core/models/t5_config.h"

using namespace starflow::core;

namespace {

// flan-t5-xl's config.json (README_TEXT_AND_VAE §6.1), the keys the encoder reads and a few it ignores.
const char* kFlanT5Xl = R"({
  "architectures": ["T5ForConditionalGeneration"], "d_ff": 5120, "d_kv": 64, "d_model": 2048,
  "decoder_start_token_id": 0, "dropout_rate": 0.1, "eos_token_id": 1, "feed_forward_proj": "gated-gelu",
  "initializer_factor": 1.0, "is_encoder_decoder": true, "layer_norm_epsilon": 1e-06, "model_type": "t5",
  "n_positions": 512, "num_decoder_layers": 24, "num_heads": 32, "num_layers": 24, "output_past": true,
  "pad_token_id": 0, "relative_attention_max_distance": 128, "relative_attention_num_buckets": 32,
  "tie_word_embeddings": false, "use_cache": true, "vocab_size": 32128})";

std::string with(std::string json, const std::string& replace, const std::string& by) {
  const size_t at = json.find(replace);
  EXPECT_NE(at, std::string::npos) << replace;
  return json.replace(at, replace.size(), by);
}

void expect_key_error(const std::string& json, const std::string& key) {
  try {
    T5Config::from_json(json, "config.json");
    ADD_FAILURE() << "no error for key " << key;
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("config.json: key '" + key + "': ", 0), 0u) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

}  // namespace

TEST(T5Config, FlanT5XlIsGatedTanhGelu) {
  const T5Config c = T5Config::from_json(kFlanT5Xl, "config.json");
  EXPECT_EQ(c.vocab_size, 32128);
  EXPECT_EQ(c.d_model, 2048);
  EXPECT_EQ(c.d_kv, 64);
  EXPECT_EQ(c.d_ff, 5120);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.num_layers, 24);
  EXPECT_EQ(c.inner_dim(), 2048);
  EXPECT_EQ(c.relative_attention_num_buckets, 32);
  EXPECT_EQ(c.relative_attention_max_distance, 128);
  EXPECT_EQ(c.layer_norm_epsilon, 1e-6);
  EXPECT_EQ(c.activation, Activation::kGeluTanh);
  EXPECT_TRUE(c.gated);
}

TEST(T5Config, ActivationFollowsTransformersResolution) {
  // Before "Update config.json": feed_forward_proj "gelu" with explicit dense_act_fn "gelu" and is_gated_act true.
  const std::string old = with(kFlanT5Xl, R"("feed_forward_proj": "gated-gelu")",
                               R"("feed_forward_proj": "gelu", "dense_act_fn": "gelu", "is_gated_act": true)");
  T5Config c = T5Config::from_json(old, "config.json");
  EXPECT_EQ(c.activation, Activation::kGeluErf);
  EXPECT_TRUE(c.gated);
  // The original T5: relu, one wi.
  c = T5Config::from_json(with(kFlanT5Xl, "gated-gelu", "relu"), "config.json");
  EXPECT_EQ(c.activation, Activation::kRelu);
  EXPECT_FALSE(c.gated);
  // "gated-relu" gates relu; "gated-gelu" alone means gelu_new, but an explicit dense_act_fn wins.
  c = T5Config::from_json(with(kFlanT5Xl, "gated-gelu", "gated-relu"), "config.json");
  EXPECT_EQ(c.activation, Activation::kRelu);
  EXPECT_TRUE(c.gated);
  c = T5Config::from_json(with(kFlanT5Xl, R"("gated-gelu")", R"("gated-gelu", "dense_act_fn": "gelu")"), "config.json");
  EXPECT_EQ(c.activation, Activation::kGeluErf);
  // is_gated_act present overrides the prefix, either way.
  c = T5Config::from_json(with(kFlanT5Xl, R"("gated-gelu")", R"("gated-gelu", "is_gated_act": false)"), "config.json");
  EXPECT_FALSE(c.gated);
  // No feed_forward_proj at all: T5Config's default, relu.
  c = T5Config::from_json(with(kFlanT5Xl, R"("feed_forward_proj": "gated-gelu",)", ""), "config.json");
  EXPECT_EQ(c.activation, Activation::kRelu);
  EXPECT_FALSE(c.gated);
}

TEST(T5Config, DefaultsForOptionalKeys) {
  std::string json = with(kFlanT5Xl, R"("relative_attention_max_distance": 128, "relative_attention_num_buckets": 32,)", "");
  json = with(json, R"("layer_norm_epsilon": 1e-06,)", "");
  const T5Config c = T5Config::from_json(json, "config.json");
  EXPECT_EQ(c.relative_attention_num_buckets, 32);
  EXPECT_EQ(c.relative_attention_max_distance, 128);
  EXPECT_EQ(c.layer_norm_epsilon, 1e-6);
}

TEST(T5Config, ErrorsNameTheKey) {
  expect_key_error(with(kFlanT5Xl, R"("d_model": 2048,)", ""), "d_model");
  expect_key_error(with(kFlanT5Xl, R"("num_heads": 32)", R"("num_heads": "32")"), "num_heads");
  expect_key_error(with(kFlanT5Xl, R"("d_kv": 64)", R"("d_kv": 0)"), "d_kv");
  expect_key_error(with(kFlanT5Xl, "gated-gelu", "gated-silu"), "feed_forward_proj");
  expect_key_error(with(kFlanT5Xl, "gated-gelu", "fancy-gelu"), "feed_forward_proj");
  expect_key_error(with(kFlanT5Xl, R"("gated-gelu")", R"("gated-gelu", "dense_act_fn": "swish")"), "dense_act_fn");
  expect_key_error(with(kFlanT5Xl, R"("gated-gelu")", R"("gated-gelu", "is_gated_act": "yes")"), "is_gated_act");
  expect_key_error(with(kFlanT5Xl, R"("relative_attention_num_buckets": 32)", R"("relative_attention_num_buckets": 2)"),
                   "relative_attention_num_buckets");
  EXPECT_THROW(T5Config::from_json("{not json", "config.json"), std::runtime_error);
  EXPECT_THROW(T5Config::from_file("/nonexistent/config.json"), std::runtime_error);
}
