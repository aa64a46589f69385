// PNG decoding (data/io/png_io.*, libpng behind our reader): as RGB bytes and as grey floats, and through
// read_png from a file as the image-folder dataset does.
#include <span>

#include "data/io/png_io.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace starflow::data;
  const std::span<const uint8_t> bytes(data, size);
  starflow::fuzz::expect_clean_rejection("input.png", [&] { (void)decode_png(bytes, ColorMode::kRgb, "input.png"); });
  starflow::fuzz::expect_clean_rejection("input.png",
                                         [&] { (void)decode_png_float(bytes, ColorMode::kGray, "input.png"); });
  const std::string path = starflow::fuzz::as_file(data, size, "image.png");
  starflow::fuzz::expect_clean_rejection(path, [&] { (void)read_png_float(path, ColorMode::kRgb); });
  return 0;
}
