// The flow's conditioning inputs (spec §1.6) as the jobs see them: a text encoder turns captions into
// embeddings [N, L, E] with a mask [N, L] (pad rows exactly zero, the mask a prefix of ones), whatever it is
// inside (word vectors, T5); class labels become a one-hot "text" of length 1.
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "core/tensor.h"

namespace starflow::core {

struct TextEmbeddings {
  Tensor<float> embeddings;  // [N, L, E]; zero wherever the mask is 0
  Tensor<uint8_t> mask;      // [N, L]; 1 for a real token (or a class), 0 for padding
};

class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  // What shards record as their text_encoder (the checkpoint's or the vectors' name).
  virtual std::string name() const = 0;
  virtual int64_t max_tokens() const = 0;  // L
  virtual int64_t dimensions() const = 0;  // E
  // Captions → embeddings and mask. The empty caption is the classifier-free-guidance null condition.
  virtual TextEmbeddings encode(std::span<const std::string> captions) = 0;
};

// Class labels → one-hot [N, 1, n_classes + 1] with mask [N, 1] all 1. A label of -1 (dropped for
// classifier-free guidance, or unknown) selects the null class n_classes. Throws std::invalid_argument
// for any other label outside 0..n_classes-1.
TextEmbeddings one_hot_labels(std::span<const int64_t> labels, int64_t n_classes);

}  // namespace starflow::core
