// The Stable-Diffusion VAE (diffusers AutoencoderKL; the real checkpoint is stabilityai/sd-vae-ft-ema), frozen:
// encode images to the posterior's mean and log-variance, decode latents to images. Inference only, written once
// against a backend (core/backends/*); parameters live in one flat buffer under the diffusers state_dict names
// (core/io/sd_vae_weights.h loads them from diffusers or CompVis/LDM files).
//
// Encoder: conv_in → down blocks (layers_per_block ResnetBlock2D each, then a downsampler except in the last:
// zero-pad right/bottom by 1, 3×3 stride-2 conv) → mid block (resnet, one-head spatial attention, resnet) →
// GroupNorm → SiLU → conv_out (2·latent) → quant_conv (1×1) → mean, clamp(logvar, −30, 20).
// Decoder: post_quant_conv (1×1) → conv_in → mid block → up blocks over the reversed widths (layers_per_block + 1
// resnets each, then nearest 2× and a 3×3 conv except in the last) → GroupNorm → SiLU → conv_out. No output
// activation. Every GroupNorm has eps 1e-6.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/models/parameter_layout.h"
#include "core/models/sd_vae_config.h"

namespace starflow::core {

// Intermediate results recorded on the host during encode/decode (for the golden check), under the diffusers
// name of the module whose output they are: "encoder.conv_in", "encoder.down_blocks.<i>",
// "encoder.mid_block.attentions.0", "encoder.mid_block", "encoder.conv_out", "quant_conv" (the posterior's
// moments, logvar not yet clamped), "post_quant_conv", "decoder.conv_in", "decoder.mid_block.attentions.0",
// "decoder.mid_block", "decoder.up_blocks.<i>".
using SdVaeCapture = std::map<std::string, std::vector<double>>;

template <class Backend>
class SdVae {
 public:
  using T = typename Backend::Scalar;
  using Buffer = typename Backend::template Buffer<T>;
  using StatBuffer = typename Backend::template Buffer<typename Backend::Stat>;

  // The parameters are registered (zero) in the diffusers state_dict order; load them with core/io/sd_vae_weights.h.
  explicit SdVae(const SdVaeConfig& cfg);
  SdVae(SdVae&&) noexcept;
  ~SdVae();

  const SdVaeConfig& config() const { return cfg_; }
  const ParameterLayout& layout() const { return layout_; }
  Buffer& parameters() { return params_; }
  const Buffer& parameters() const { return params_; }
  const Backend& backend() const { return *be_; }

  // images [B, in_channels, H, W] in [−1, 1] (H and W multiples of downsampling()) → mean and logvar
  // [B, latent_channels, H/f, W/f], logvar clamped to [−30, 20]. Pointers in the backend's memory.
  void encode(const T* images, int64_t B, int64_t H, int64_t W, T* mean, T* logvar);
  // z [B, latent_channels, h, w] (unscaled VAE space) → images [B, out_channels, h·f, w·f], not clamped.
  void decode(const T* z, int64_t B, int64_t h, int64_t w, T* images);

  // While set, encode and decode record their intermediate results into *capture (nullptr: stop).
  void set_capture(SdVaeCapture* capture) { capture_ = capture; }

 private:
  struct Conv {
    int64_t weight = 0, bias = 0, in = 0, out = 0, kernel = 0;
  };
  struct Norm {
    int64_t weight = 0, bias = 0, channels = 0;
  };
  struct Linear {
    int64_t weight = 0, bias = 0;
  };
  struct Resnet {
    Norm norm1, norm2;
    Conv conv1, conv2, shortcut;
    bool has_shortcut = false;
  };
  struct Attention {
    Norm norm;
    Linear q, k, v, out;
    int64_t channels = 0;
  };
  struct Block {
    std::vector<Resnet> resnets;
    bool has_sampler = false;  // the downsampler (encoder) or upsampler (decoder) conv
    Conv sampler;
  };
  struct MidBlock {
    Resnet first, second;
    Attention attention;
  };

  Conv add_conv(const std::string& name, int64_t in, int64_t out, int64_t kernel);
  Norm add_norm(const std::string& name, int64_t channels);
  Linear add_linear(const std::string& name, int64_t in, int64_t out);
  Resnet add_resnet(const std::string& name, int64_t in, int64_t out);
  MidBlock add_mid_block(const std::string& name, int64_t channels);

  // The layers on activations [B, C, H, W]; `x` and `out` never alias. Scratch buffers are the model's own.
  void conv(T* out, const T* x, const Conv& c, int64_t B, int64_t H, int64_t W, int64_t stride = 1,
            bool pad_right_bottom_only = false) const;
  void norm_silu(T* out, const T* x, const Norm& n, int64_t B, int64_t HW);
  void resnet(T* out, const T* x, const Resnet& r, int64_t B, int64_t H, int64_t W);
  void attention(T* out, const T* x, const Attention& a, int64_t B, int64_t H, int64_t W);
  // The mid block on cur_ (channels C at H×W), leaving its output in cur_; `part` names the captures.
  void mid_block(const MidBlock& m, const std::string& part, int64_t B, int64_t H, int64_t W);
  void record(const std::string& name, const T* data, int64_t n) const;
  // Sizes the work buffers for activations of up to n elements (and the attention's S×S probabilities).
  void reserve(int64_t n, int64_t attention_rows, int64_t B);

  SdVaeConfig cfg_;
  std::unique_ptr<Backend> be_;
  ParameterLayout layout_;
  Buffer params_;
  // Encoder and decoder structure (offsets into params_).
  Conv enc_conv_in_, enc_conv_out_, quant_conv_, post_quant_conv_, dec_conv_in_, dec_conv_out_;
  std::vector<Block> down_, up_;
  MidBlock enc_mid_, dec_mid_;
  Norm enc_norm_out_, dec_norm_out_;
  // Work buffers: the current activation, two scratch activations, the attention's q/k/v/probs, norm stats.
  Buffer cur_, next_, a_, b_, q_, k_, v_, probs_;
  StatBuffer stats_;
  SdVaeCapture* capture_ = nullptr;
};

}  // namespace starflow::core
