// A training checkpoint's preamble, trailer, JSON header and tensor index (what inspect and resume read first).
#include "jobs/checkpoint.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = starflow::fuzz::as_file(data, size, "ckpt_00000001.sfckpt");
  starflow::fuzz::expect_one_line_rejection([&] { (void)starflow::jobs::read_checkpoint_header(path); });
  return 0;
}
