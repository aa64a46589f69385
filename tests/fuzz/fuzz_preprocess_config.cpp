// The preprocessing config file (jobs/preprocess_job.cpp: preprocess_options_from_file, YAML with the
// command's option names).
#include "jobs/preprocess_job.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = starflow::fuzz::as_file(data, size, "preprocess.yaml");
  starflow::fuzz::expect_clean_rejection(path, [&] { (void)starflow::jobs::preprocess_options_from_file(path); });
  return 0;
}
