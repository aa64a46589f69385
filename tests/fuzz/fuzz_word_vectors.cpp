// The word-vector JSON file (the npm embeddings' format), parsed without its binary cache.
#include "core/io/word_vectors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = starflow::fuzz::as_file(data, size, "vectors.json");
  starflow::fuzz::expect_one_line_rejection([&] {
    (void)starflow::core::io::WordVectors::load(path, starflow::core::io::WordVectorCache::kIgnore);
  });
  return 0;
}
