// The preprocessing run manifest (jobs/preprocess_job.cpp: check_or_record_manifest), the JSON a first run
// leaves in its output directory and every later run into it reads back: the input is that file, compared with
// a real run's manifest. A refusal is a returned message, which must be one line naming the file.
#include <nlohmann/json.hpp>

#include "jobs/preprocess_job.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace starflow;
  static const nlohmann::json want = nlohmann::json::parse(
      R"({"autoencoder": "ae_fashion_mnist_32.safetensors", "dataset": "fashion-mnist",
          "format": "starflow-preprocess-run", "samples": 16, "shard_size": 16, "shards": 1, "split": "train"})");
  std::filesystem::create_directories(fuzz::scratch() / "run");
  const std::string path = fuzz::as_file(data, size, "run/shard.preprocess.json");
  jobs::PreprocessOptions options;
  options.out_dir = (fuzz::scratch() / "run").string();
  options.prefix = "shard";
  std::string refusal;
  fuzz::expect_clean_rejection(path, [&] { refusal = jobs::check_or_record_manifest(options, want); });
  if (!refusal.empty()) fuzz::check_message(std::runtime_error(refusal), path);
  return 0;
}
