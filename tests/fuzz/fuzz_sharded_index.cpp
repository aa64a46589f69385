// A sharded checkpoint's model.safetensors.index.json (core/io/sharded_safetensors.*): weight_map, metadata,
// shard names, beside one real shard so that inputs naming it reach the cross-checks of index and shard.
#include <filesystem>
#include <vector>

#include "core/io/safetensors.h"
#include "core/io/sharded_safetensors.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

void write_shard(const std::filesystem::path& dir) {
  static const float w[6] = {1, 2, 3, 4, 5, 6};
  static const uint16_t h[2] = {0x3c00, 0xc000};
  std::vector<starflow::core::io::TensorToWrite> tensors = {
      {"encoder.final_layer_norm.weight", "F32", {2, 3}, w, sizeof w},
      {"shared.weight", "F16", {2}, h, sizeof h},
      {"encoder.embed_tokens.weight", "I32", {1}, w, 4}};
  starflow::core::io::write_safetensors((dir / "model-00001-of-00002.safetensors").string(), tensors);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  const fs::path dir = starflow::fuzz::scratch() / "model";
  static const bool ready = [&] {
    fs::create_directories(dir);
    write_shard(dir);
    return true;
  }();
  (void)ready;
  const std::string index = starflow::fuzz::as_file(data, size, "model/model.safetensors.index.json");
  // Errors name the index, or the shard it sends the reader to (both live in dir).
  starflow::fuzz::expect_clean_rejection(dir.string(), [&] {
    const auto model = starflow::core::io::ShardedSafeTensors::open(dir.string());
    for (const std::string& name : model.names()) {
      const auto& info = model.info(name);
      (void)model.shard_path(name);
      (void)model.read<float>(name, info.shape);
    }
  });
  return 0;
}
