// The safetensors reader: header length, JSON header, tensor index (dtype, shape, offsets), every tensor read.
#include "core/io/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = starflow::fuzz::as_file(data, size, "input.safetensors");
  starflow::fuzz::expect_one_line_rejection([&] {
    const auto file = starflow::core::io::SafeTensorsFile::open(path);
    for (const std::string& name : file.names()) {
      const auto& info = file.info(name);
      if (info.dtype == "F32" || info.dtype == "F16" || info.dtype == "BF16" || info.dtype == "F64")
        (void)file.read<float>(name);
    }
  });
  return 0;
}
