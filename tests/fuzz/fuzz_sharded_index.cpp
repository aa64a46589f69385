// A sharded checkpoint's model.safetensors.index.json (weight_map, shard names), beside one real shard.
#include <filesystem>

#include <vector>

#include "core/io/safetensors.h"
#include "core/io/sharded_safetensors.h"
#include "tests/fuzz/fuzz_util.h"

// One real shard beside the index, so that inputs naming it reach the cross-checks of index and shard.
void write_shard(const std::filesystem::path& dir) {
  static const float w[6] = {1, 2, 3, 4, 5, 6};
  std::vector<starflow::core::io::TensorToWrite> tensors = {
      {"encoder.final_layer_norm.weight", "F32", {2, 3}, w, sizeof w}};
  starflow::core::io::write_safetensors((dir / "model-00001-of-00001.safetensors").string(), tensors);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  const fs::path dir = starflow::fuzz::scratch() / "model";
  static const bool ready = [&] {
    fs::create_directories(dir);
    write_shard(dir);
    return true;
  }();
  (void)ready;
  starflow::fuzz::as_file(data, size, "model/model.safetensors.index.json");
  starflow::fuzz::expect_one_line_rejection([&] {
    const auto model = starflow::core::io::ShardedSafeTensors::open(dir.string());
    for (const std::string& name : model.names()) (void)model.has(name);
  });
  return 0;
}
