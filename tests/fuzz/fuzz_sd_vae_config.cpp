// The SD-VAE's config.json (core/models/sd_vae_config.cpp: diffusers' AutoencoderKL keys).
#include <string>

#include "core/models/sd_vae_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  starflow::fuzz::expect_clean_rejection(
      "vae/config.json", [&] { (void)starflow::core::SdVaeConfig::from_json(text, "vae/config.json"); });
  return 0;
}
