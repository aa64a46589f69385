// Raw bytes as an HDF5 latent shard (data/latent_shard_reader.cpp), seeded with real small shards written by
// `starflow preprocess`: the input is written to a .h5 file and opened with LatentShardReader, its samples
// read. Not in tools/fuzz.sh's default list: Debian 12's HDF5 1.10.8 itself crashes within a minute on
// corrupted metadata (global heap, object headers) before our checks run (FUZZING.md); fuzz_latent_shard is
// the structure-aware target for our validation. Run it by name: tools/fuzz.sh SECONDS latent_shard_bytes.
#include <algorithm>

#include "data/latent_shard.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = starflow::fuzz::as_file(data, size, "shard-00000.h5");
  starflow::fuzz::expect_clean_rejection(path, [&] {
    const starflow::data::LatentShardReader reader(path);
    if (reader.num_samples() > 0) (void)reader.read(0, std::min<int64_t>(reader.num_samples(), 64), true);
  });
  return 0;
}
