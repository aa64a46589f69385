// IDX files (Fashion-MNIST's images and labels).
#include "data/io/idx_reader.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = starflow::fuzz::as_file(data, size, "images-idx3-ubyte");
  starflow::fuzz::expect_one_line_rejection([&] { (void)starflow::data::read_idx_images(path); });
  starflow::fuzz::expect_one_line_rejection([&] { (void)starflow::data::read_idx_labels(path); });
  return 0;
}
