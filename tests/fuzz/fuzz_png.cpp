// PNG decoding (libpng behind our reader), grey and RGB.
#include <span>

#include "data/io/png_io.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  starflow::fuzz::expect_one_line_rejection(
      [&] { (void)starflow::data::decode_png(bytes, starflow::data::ColorMode::kRgb, "input.png"); });
  starflow::fuzz::expect_one_line_rejection(
      [&] { (void)starflow::data::decode_png_float(bytes, starflow::data::ColorMode::kGray, "input.png"); });
  return 0;
}
