// The word-vector JSON file (core/io/word_vectors.*: wink's embeddings format, read with a SAX parser),
// without its binary cache (fuzz_word_vector_cache has that), then every word looked up.
#include "core/io/word_vectors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = starflow::fuzz::as_file(data, size, "vectors.json");
  starflow::fuzz::expect_clean_rejection(path, [&] {
    const auto vectors = starflow::core::io::WordVectors::load(path, starflow::core::io::WordVectorCache::kIgnore);
    for (int64_t i = 0; i < vectors.size(); ++i) (void)vectors.find(vectors.word(i));
  });
  return 0;
}
