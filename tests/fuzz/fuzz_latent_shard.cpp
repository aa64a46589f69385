// An HDF5 latent shard: the reader's validation of its attributes and datasets, then every sample read.
#include "data/latent_shard.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = starflow::fuzz::as_file(data, size, "shard-00000.h5");
  starflow::fuzz::expect_one_line_rejection([&] {
    const starflow::data::LatentShardReader reader(path);
    if (reader.num_samples() > 0) (void)reader.read(0, std::min<int64_t>(reader.num_samples(), 64), true);
  });
  return 0;
}
