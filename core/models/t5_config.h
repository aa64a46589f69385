// The T5 encoder's shape, read from a Hugging Face config.json (T5Config keys), with the feed-forward
// activation resolved as transformers resolves it (README_TEXT_AND_VAE §6.1): flan-t5's "gated-gelu" is the
// tanh GELU ("gelu_new") on wi_0 times the linear wi_1; explicit dense_act_fn / is_gated_act keys override.
#pragma once
#include <cstdint>
#include <string>

#include "core/ops/activation.h"

namespace starflow::core {

struct T5Config {
  int64_t vocab_size = 0;  // embedding rows (flan-t5: 32128 = 32000 pieces + 100 sentinels + 28 unused)
  int64_t d_model = 0;
  int64_t d_kv = 0;  // per head; the attention width is num_heads·d_kv, which need not be d_model
  int64_t d_ff = 0;
  int64_t num_heads = 0;
  int64_t num_layers = 0;  // encoder blocks
  int64_t relative_attention_num_buckets = 32;
  int64_t relative_attention_max_distance = 128;
  double layer_norm_epsilon = 1e-6;
  Activation activation = Activation::kRelu;
  bool gated = false;  // wi_0 / wi_1 (gated) or a single wi

  int64_t inner_dim() const { return num_heads * d_kv; }

  // Parses config.json text; `source` names it in errors: std::runtime_error "<source>: key 'K': ..." (one
  // line) for a missing or ill-typed size key, an unknown activation, or a non-positive size. The size keys
  // (vocab_size, d_model, d_kv, d_ff, num_heads, num_layers) are required; relative_attention_num_buckets,
  // relative_attention_max_distance, layer_norm_epsilon and feed_forward_proj take T5Config's defaults (32, 128,
  // 1e-6, "relu") when absent. Activations: gelu_new (tanh), gelu (erf), relu.
  static T5Config from_json(const std::string& text, const std::string& source);
  static T5Config from_file(const std::string& path);  // config.json; FileError when unreadable
};

}  // namespace starflow::core
