// The YAML training config (official ml-starflow keys and ours), validated.
#include <string>

#include "jobs/train_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  starflow::fuzz::expect_one_line_rejection([&] { (void)starflow::jobs::TrainConfig::from_yaml(text, "train.yaml"); });
  return 0;
}
