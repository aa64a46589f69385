// IDX files (data/io/idx_reader.*: Fashion-MNIST's images and labels, gzip or plain), the same bytes read as
// images and as labels.
#include "data/io/idx_reader.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = starflow::fuzz::as_file(data, size, "t10k-images-idx3-ubyte.gz");
  starflow::fuzz::expect_clean_rejection(path, [&] { (void)starflow::data::read_idx_images(path); });
  starflow::fuzz::expect_clean_rejection(path, [&] { (void)starflow::data::read_idx_labels(path); });
  return 0;
}
