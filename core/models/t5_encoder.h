// The T5 v1.1 / flan-t5 encoder (HF T5EncoderModel, inference only), written once against a backend: token ids →
// the last hidden state times the mask, what STARFlow conditions on. Weights are read under their upstream names
// from a (sharded, memory-mapped) checkpoint into one flat buffer of the backend's scalar type; the decoder
// tensors in the same files are never touched. The computation (README_TEXT_AND_VAE §3.2):
//   h = E[ids]; per block: h += o(attn(RMSNorm(h))) with scores q·kᵀ (no 1/√d) + block 0's relative position
//   bias + the key mask; h += wo(act(wi_0(x)) ⊙ wi_1(x)), x = RMSNorm(h); out = RMSNorm(h) · mask.
// Padding costs nothing in encode(): rows run at their own length (padded keys are masked out upstream, so the
// valid positions do not depend on them) and padded outputs are zero. forward_masked() is upstream's full-length
// computation with the additive key mask, for the golden check.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backends/cpu/cpu_backend.h"
#include "core/io/sharded_safetensors.h"
#include "core/models/parameter_layout.h"
#include "core/models/t5_config.h"

namespace starflow::core {

// The intermediate results of forward_masked (host copies, the fixture's aux.* tensors), B rows of length S.
struct T5EncoderTrace {
  std::vector<double> embed;                     // [B, S, D]: the embedding lookup
  std::vector<double> position_bias;             // [H, S, S]: block 0's bias, without the mask
  std::vector<std::vector<double>> attn_probs;   // per block [B, H, S, S]
  std::vector<std::vector<double>> blocks;       // per block [B, S, D]: h after the block
  std::vector<double> block0_ln0, block0_attn, block0_after_attn, block0_ln1, block0_ff;  // [B, S, D]
  std::vector<double> last_hidden_state;         // [B, S, D]: the final norm's output, before the mask
};

template <class Backend>
class T5Encoder {
 public:
  using T = typename Backend::Scalar;
  using Buffer = typename Backend::template Buffer<T>;

  explicit T5Encoder(const T5Config& cfg);
  T5Encoder(T5Encoder&&) noexcept;
  ~T5Encoder();

  const T5Config& config() const { return cfg_; }
  const ParameterLayout& layout() const { return layout_; }  // upstream names; the embedding as encoder.embed_tokens
  Buffer& parameters() { return params_; }
  const Buffer& parameters() const { return params_; }
  const Backend& backend() const { return *be_; }

  // Every encoder tensor from `checkpoint`, under `prefix` + its upstream name (the golden fixture's "param.").
  // The embedding is encoder.embed_tokens.weight when the files have it, else shared.weight (safetensors
  // conversions keep only one of the tied pair). F32, F16, BF16 are converted to the backend's scalar.
  // Throws the reader's one-line error naming the file and the tensor (missing, wrong shape, integer dtype).
  void load_weights(const io::ShardedSafeTensors& checkpoint, const std::string& prefix = "");

  // N captions of L token ids (host memory, row-major [N, L]), row r holding lengths[r] valid tokens (0..L) then
  // padding → out [N, L, d_model] (backend memory): the masked last hidden state, zero on padded positions.
  // Padding is never computed: the rows' valid tokens run back to back (each row attends within itself), so the
  // cost follows the captions' real lengths. Throws std::invalid_argument for an id outside the vocabulary or a
  // length outside [0, L].
  void encode(const int64_t* ids, const int64_t* lengths, int64_t N, int64_t L, T* out);

  // Upstream's computation over all L positions of every row: mask (host, [N, L], 0/1) as the additive key mask
  // (finfo.min on padded keys; padded queries computed normally). out [N, L, d_model] (backend memory): the last
  // hidden state times the mask. With `trace`, the intermediate results too.
  void forward_masked(const int64_t* ids, const int64_t* mask, int64_t N, int64_t L, T* out,
                      T5EncoderTrace* trace = nullptr);

  // Activations of one encode() pass are kept below about this many elements (default 2^25: 128 MiB in float):
  // a big batch of captions runs as several passes of whole rows (about 1,200 tokens a pass at flan-t5-xl's
  // sizes), never fewer than one row.
  void set_pass_elements(int64_t elements) { pass_elements_ = elements; }

 private:
  struct BlockParams {
    int64_t q = -1, k = -1, v = -1, o = -1, ln0 = -1, wi0 = -1, wi1 = -1, wo = -1, ln1 = -1;
  };
  void check_ids(const int64_t* ids, int64_t count) const;
  // Rows of the given lengths, their tokens back to back in ids_ (already uploaded) → the final norm's output
  // [Σ lengths, d_model] into `out`. Rows of one length attend as one batch (with key_mask_add [G, S] when not
  // null, upstream's padded computation); mixed lengths attend row by row, unmasked.
  void run(const std::vector<int64_t>& lengths, const T* key_mask_add, T* out, T5EncoderTrace* trace);
  // Tokens per encode() pass within pass_elements_, for rows of at most `longest` tokens (at least one row).
  int64_t tokens_per_pass(int64_t longest) const;

  T5Config cfg_;
  std::unique_ptr<Backend> be_;  // on the heap: the model may move, the backend's state stays put
  ParameterLayout layout_;
  int64_t embed_ = -1, relative_bias_ = -1, final_norm_ = -1;
  std::vector<BlockParams> blocks_;
  int64_t pass_elements_ = int64_t(1) << 25;
  Buffer params_;
  // Activations of one pass (grown to the largest pass so far).
  typename Backend::template Buffer<int64_t> ids_;
  Buffer h_, x_, q_, k_, v_, attn_, probs_, proj_, ff0_, ff1_, bias_, mask_add_, final_;
  typename Backend::template Buffer<typename Backend::Stat> rrms_;
};

// The CPU encoder (float to run, double for checks).
template <class T>
using T5EncoderCpu = T5Encoder<CpuBackend<T>>;

// A Hugging Face model folder (config.json + model.safetensors[.index.json]) → its encoder, weights loaded.
template <class Backend>
T5Encoder<Backend> load_t5_encoder(const std::string& folder);

}  // namespace starflow::core
