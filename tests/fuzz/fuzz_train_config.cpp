// The YAML training config (jobs/train_config.cpp: TrainConfig::from_file -> from_yaml, the official
// ml-starflow keys and ours, then validate()).
#include "jobs/train_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = starflow::fuzz::as_file(data, size, "train.yaml");
  starflow::fuzz::expect_clean_rejection(path, [&] { (void)starflow::jobs::TrainConfig::from_file(path); });
  return 0;
}
