// T5's config.json (core/models/t5_config.cpp, read by T5Config::from_file as `starflow` does).
#include "core/models/t5_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = starflow::fuzz::as_file(data, size, "config.json");
  starflow::fuzz::expect_clean_rejection(path, [&] { (void)starflow::core::T5Config::from_file(path); });
  return 0;
}
