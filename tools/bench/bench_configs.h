// The benchmark configurations of shared/anchors/PERFORMANCE.md: config A (width 256, 4 blocks × 2 layers, batch
// 32) and config B (width 512, 4 blocks × 4 layers, batch 16), latents 4×8×8, a text prefix of 8 tokens × 100 dims
// in the top block. Defined here only: the PyTorch reference (tools/torch_reference) is given each one as its
// official JSON (--model-config) and batch (--batch).
#pragma once
#include <string>

#include "core/models/flow_config.h"

namespace starflow::tools {

struct BenchConfig {
  std::string name;
  core::FlowConfig model;
  int64_t batch;
};

inline BenchConfig bench_config(const std::string& name) {
  core::FlowConfig c;
  c.in_channels = 4;
  c.img_size = 8;
  c.patch_size = 1;
  c.head_dim = 64;
  c.num_blocks = 4;
  c.txt_size = 8;
  c.txt_dim = 100;
  c.cond_top_only = true;
  c.seq_order = core::SeqOrder::L2R;
  c.soft_clip = 4.0;
  if (name == "A") {
    c.channels = 256;
    c.layers_per_block = {2, 2, 2, 2};
    return {name, c, 32};
  }
  if (name == "B") {
    c.channels = 512;
    c.layers_per_block = {4, 4, 4, 4};
    return {name, c, 16};
  }
  throw std::invalid_argument("unknown bench config '" + name + "' (expected A or B)");
}

}  // namespace starflow::tools
