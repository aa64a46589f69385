// The STARFlow model configuration under the official ml-starflow keyword names, with the derived sizes
// and the rules (permutation per block, which blocks see the text, each block's width and heads) that the spec
// and the official `transformer_flow.Model` fix (golden README §7 lists every switch).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace starflow::core {

enum class SeqOrder { L2R, R2L };
// The transformer layers' pre-norms: `norm_type` "layer_norm", "rms_norm", or any other string (no pre-norm).
enum class NormType { kLayerNorm, kRmsNorm, kNone };

struct FlowConfig {
  int64_t in_channels = 4;   // latent channels (Cimg)
  int64_t img_size = 8;      // latent side H = W
  int64_t patch_size = 1;
  int64_t channels = 128;    // transformer width C
  int64_t num_blocks = 3;
  std::vector<int64_t> layers_per_block{1, 1, 2};  // a 0 for a shallow block: an identity block
  int64_t head_dim = 64;
  int64_t txt_size = 0;      // L: text (or one-hot class) tokens of the conditioning prefix
  int64_t txt_dim = 0;       // E
  bool cond_top_only = true;
  double soft_clip = 4.0;
  SeqOrder seq_order = SeqOrder::L2R;
  bool use_softplus = true;
  bool use_final_norm = true;
  int64_t pt_seq_len = 0;    // 0: img_size / patch_size
  // The optional switches (all off in the released configs).
  bool sos = true;                 // false: no start token; the head's outputs are shifted instead
  NormType norm_type = NormType::kLayerNorm;
  bool use_swiglu = false;         // MLP down(gelu_tanh(gate(a)) ⊙ up(a)), hidden 4C
  bool use_qk_norm = false;        // RMSNorm over head_dim on q and k, before RoPE
  bool use_post_norm = false;      // RMSNorm on the attention and MLP outputs before each residual add
  bool use_bias = true;            // biases of qkv, proj and the MLP linears
  bool hf_style_rope = false;      // rotate pairs (m, m + dh/2) instead of (2m, 2m+1)
  int64_t attention_heads = 0;     // `num_heads`: query heads of every block (0: the block's width / head_dim)
  int64_t kv_heads = 0;            // `num_kv_heads`: grouped-query attention (0: as many as query heads)
  int64_t top_block_channels = 0;  // the deep block's own width (0: channels)
  bool learnable_self_denoiser = false;  // an 8-layer non-causal network predicting the denoising step
  bool conditional_denoiser = false;     // the denoiser sees the text prefix

  // Derived sizes.
  int64_t grid() const { return img_size / patch_size; }
  int64_t tokens() const { return grid() * grid(); }                          // T
  int64_t token_dim() const { return patch_size * patch_size * in_channels; }  // D
  int64_t rope_seq_len() const { return pt_seq_len > 0 ? pt_seq_len : grid(); }
  bool conditional() const { return txt_size > 0; }
  bool block_is_conditioned(int64_t k) const { return conditional() && (!cond_top_only || k == num_blocks - 1); }
  // A shallow block with no layers is the official IdentityBlock (no parameters, output = input, logdet 0).
  bool block_is_identity(int64_t k) const { return k < num_blocks - 1 && layers_per_block[k] == 0; }
  // Width, query heads and KV heads of block k (the deep block may be wider: top_block_channels).
  int64_t block_channels(int64_t k) const {
    return k == num_blocks - 1 && top_block_channels > 0 ? top_block_channels : channels;
  }
  int64_t block_heads(int64_t k) const { return attention_heads > 0 ? attention_heads : block_channels(k) / head_dim; }
  int64_t block_kv_heads(int64_t k) const { return kv_heads > 0 ? kv_heads : block_heads(k); }
  // The deep block's query heads (what tensor parallelism splits).
  int64_t num_heads() const { return block_heads(num_blocks - 1); }
  // Spec §1.4: R2L uses [Identity, Flip][k mod 2]; L2R uses [Identity, Flip][(k+1) mod 2] for every block
  // (the top block's rule reduces to the same formula).
  bool block_flips(int64_t k) const { return seq_order == SeqOrder::R2L ? (k % 2 == 1) : ((k + 1) % 2 == 1); }

  // Throws std::invalid_argument naming the offending key and the rule it breaks.
  void validate() const;

  // The official `transformer_flow.Model` keyword set as JSON (e.g. a golden fixture's `config` metadata).
  // Switches the official code cannot instantiate (rope false, use_pretrained_lm) are refused with the reason;
  // switches without effect on images are accepted with a one-line notice on stderr; unknown keys are refused.
  static FlowConfig from_official_json(const std::string& json_text);
  std::string to_official_json() const;
};

}  // namespace starflow::core
