// The safetensors reader (core/io/safetensors.*): header length, JSON header, metadata, tensor index (dtype,
// shape, offsets, overlaps), then every tensor read and converted.
#include "core/io/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = starflow::fuzz::as_file(data, size, "input.safetensors");
  starflow::fuzz::expect_clean_rejection(path, [&] {
    const auto file = starflow::core::io::SafeTensorsFile::open(path);
    for (const auto& [key, value] : file.metadata()) (void)file.metadata_value(key);
    for (const std::string& name : file.names()) {
      const auto& info = file.info(name);
      (void)file.raw(name);
      (void)file.read<float>(name, info.shape);
    }
  });
  return 0;
}
