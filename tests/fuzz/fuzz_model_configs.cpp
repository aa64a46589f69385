// The config.json of the T5 encoder and of the SD-VAE (the same bytes through both parsers).
#include <string>

#include "core/models/sd_vae_config.h"
#include "core/models/t5_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  starflow::fuzz::expect_one_line_rejection([&] { (void)starflow::core::T5Config::from_json(text, "config.json"); });
  starflow::fuzz::expect_one_line_rejection([&] { (void)starflow::core::SdVaeConfig::from_json(text, "config.json"); });
  return 0;
}
