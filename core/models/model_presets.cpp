// The presets' values (see model_presets.h).
#include "core/models/model_presets.h"

#include <stdexcept>

namespace starflow::core {
namespace {

// 4×32×32 SD-VAE latents of 256² images, patch 1, head dim 64, a 128 × 2048 Flan-T5 prefix in the deep block:
// the paper's text-to-image configuration, six blocks of which the last is deep.
ModelPreset text_to_image(const std::string& name, int64_t width, int64_t deep_layers) {
  FlowConfig c;
  c.in_channels = 4;
  c.img_size = 32;
  c.patch_size = 1;
  c.channels = width;
  c.head_dim = 64;
  c.num_blocks = 6;
  c.layers_per_block = {2, 2, 2, 2, 2, deep_layers};
  c.txt_size = 128;
  c.txt_dim = 2048;
  c.cond_top_only = true;
  return {name, "text-to-image at 256x256 (width " + std::to_string(width) + ", deep block of " +
                    std::to_string(deep_layers) + " layers), global batch 1024",
          c, 1024};
}

// Latents 4×8×8, patch 1, head dim 64, 4 blocks, an 8 × 100 text prefix in the top block: small enough to time on
// a CPU, shaped like the real model.
ModelPreset cpu_bench(const std::string& name, int64_t width, int64_t layers, int64_t batch) {
  FlowConfig c;
  c.in_channels = 4;
  c.img_size = 8;
  c.patch_size = 1;
  c.channels = width;
  c.head_dim = 64;
  c.num_blocks = 4;
  c.layers_per_block = {layers, layers, layers, layers};
  c.txt_size = 8;
  c.txt_dim = 100;
  c.cond_top_only = true;
  return {name, "CPU benchmark config (width " + std::to_string(width) + ", 4 blocks x " + std::to_string(layers) +
                    " layers, batch " + std::to_string(batch) + ")",
          c, batch};
}

// The demo's deep-shallow model (≈2M parameters): width 128, head dim 32, two shallow blocks of 2 layers and a
// deep block of 6, 4×8×8 latents of the bundled autoencoders. Its conditioning (classes or captions) is the
// dataset's: the demo sets txt_size and txt_dim.
ModelPreset demo() {
  FlowConfig c;
  c.in_channels = 4;
  c.img_size = 8;
  c.patch_size = 1;
  c.channels = 128;
  c.head_dim = 32;
  c.num_blocks = 3;
  c.layers_per_block = {2, 2, 6};
  c.cond_top_only = true;
  return {"demo", "the demo's deep-shallow model (width 128, blocks [2, 2, 6]), batch 64", c, 64};
}

}  // namespace

const std::vector<ModelPreset>& model_presets() {
  static const std::vector<ModelPreset> presets = {text_to_image("3.86B", 3072, 24), text_to_image("279M", 1024, 12),
                                                   cpu_bench("bench-A", 256, 2, 32), cpu_bench("bench-B", 512, 4, 16),
                                                   demo()};
  return presets;
}

const ModelPreset& model_preset(const std::string& name) {
  std::string known;
  for (const ModelPreset& p : model_presets()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  throw std::invalid_argument("unknown model preset '" + name + "' (known: " + known + ")");
}

}  // namespace starflow::core
