// The STARFlow model configuration under the official ml-starflow keyword names, with the derived sizes
// and the rules (permutation per block, which blocks see the text) that the spec fixes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace starflow::core {

enum class SeqOrder { L2R, R2L };

struct FlowConfig {
  int64_t in_channels = 4;   // latent channels (Cimg)
  int64_t img_size = 8;      // latent side H = W
  int64_t patch_size = 1;
  int64_t channels = 128;    // transformer width C
  int64_t num_blocks = 3;
  std::vector<int64_t> layers_per_block{1, 1, 2};
  int64_t head_dim = 64;
  int64_t txt_size = 0;      // L: text (or one-hot class) tokens of the conditioning prefix
  int64_t txt_dim = 0;       // E
  bool cond_top_only = true;
  double soft_clip = 4.0;
  SeqOrder seq_order = SeqOrder::L2R;
  bool use_softplus = true;
  bool use_final_norm = true;
  int64_t pt_seq_len = 0;    // 0: img_size / patch_size

  // Derived sizes.
  int64_t grid() const { return img_size / patch_size; }
  int64_t tokens() const { return grid() * grid(); }                          // T
  int64_t token_dim() const { return patch_size * patch_size * in_channels; }  // D
  int64_t num_heads() const { return channels / head_dim; }
  int64_t rope_seq_len() const { return pt_seq_len > 0 ? pt_seq_len : grid(); }
  bool conditional() const { return txt_size > 0; }
  bool block_is_conditioned(int64_t k) const { return conditional() && (!cond_top_only || k == num_blocks - 1); }
  // Spec §1.4: R2L uses [Identity, Flip][k mod 2]; L2R uses [Identity, Flip][(k+1) mod 2] for every block
  // (the top block's rule reduces to the same formula).
  bool block_flips(int64_t k) const { return seq_order == SeqOrder::R2L ? (k % 2 == 1) : ((k + 1) % 2 == 1); }

  // Throws std::invalid_argument naming the offending key and the rule it breaks.
  void validate() const;

  // The official `transformer_flow.Model` keyword set as JSON (e.g. a golden fixture's `config` metadata).
  // Settings this implementation does not provide (sos=false, rope=false, swiglu, qk-norm, ...) are refused
  // with the key named; unknown keys are refused too.
  static FlowConfig from_official_json(const std::string& json_text);
  std::string to_official_json() const;
};

}  // namespace starflow::core
