// The T5 golden fixtures (tests/golden/data/t5_tokenizer.safetensors and t5_tiny_encoder.safetensors,
// README_TEXT_AND_VAE.md §2, §3, §7): tokenization rows recomputed with the SentencePiece model that lies next to
// the fixture (t5_tiny_spiece.model), and the encoder rebuilt from the fixture's config and param.* tensors, its
// results compared with upstream transformers' float64 ones. Thresholds: token ids, masks and buckets exact, the
// embedding and position bias exact (lookups), out.* / aux.block* / aux.block0.* within 1e-5·max|ref|, attention
// probabilities within 1e-5 absolute.
#pragma once
#include <string>

#include "core/golden/golden_check.h"
#include "core/io/safetensors.h"

namespace starflow::core::golden {

constexpr double kTolT5Hidden = 1e-5;  // relative to max|ref|, per tensor
constexpr double kTolT5Probs = 1e-5;   // absolute

// Whether a fixture is one of T5's (the tokenizer rows, or the encoder's parameters).
bool is_t5_fixture(const io::SafeTensorsFile& file);

// Throws std::runtime_error "<file>: ..." (one line) for a missing tensor, a bad config or a missing SentencePiece
// model.
Report check_t5_file(const std::string& path);

}  // namespace starflow::core::golden
