// Class labels as the flow's one-hot conditioning.
#include "core/models/text_encoder.h"

#include <stdexcept>
#include <string>

namespace starflow::core {

TextEmbeddings one_hot_labels(std::span<const int64_t> labels, int64_t n_classes) {
  if (n_classes <= 0) throw std::invalid_argument("one_hot_labels: n_classes must be positive");
  const int64_t n = static_cast<int64_t>(labels.size()), width = n_classes + 1;
  TextEmbeddings out{Tensor<float>(Shape{n, 1, width}), Tensor<uint8_t>(Shape{n, 1}, 1)};
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = labels[static_cast<size_t>(i)];
    if (label < -1 || label >= n_classes)
      throw std::invalid_argument("one_hot_labels: label " + std::to_string(label) + " of sample " + std::to_string(i) +
                                  " is outside 0.." + std::to_string(n_classes - 1) + " (or -1 for the null class)");
    out.embeddings.data[static_cast<size_t>(i * width + (label < 0 ? n_classes : label))] = 1.0f;
  }
  return out;
}

}  // namespace starflow::core
