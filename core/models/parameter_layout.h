// One flat parameter buffer, one flat gradient buffer, and a table of named views into them under the
// official ml-starflow state_dict names. Checkpoints, import/export and the golden tests use these names.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"

namespace starflow::core {

struct ParameterView {
  std::string name;  // official state_dict name, e.g. "blocks.2.attn_blocks.0.attention.qkv.weight"
  Shape shape;
  int64_t offset = 0;  // in elements, into the flat buffers
  int64_t size = 0;
};

class ParameterLayout {
 public:
  // Appends a tensor; returns its offset. Offsets are 16-element aligned so every view starts on a
  // 64-byte boundary (vector loads, and later one-to-one GPU copies).
  int64_t add(const std::string& name, Shape shape);
  const std::vector<ParameterView>& views() const { return views_; }
  const ParameterView* find(const std::string& name) const;
  const ParameterView& at(const std::string& name) const;  // throws naming the tensor
  int64_t total_size() const { return total_; }
  // Elements actually held by parameters (the total without the alignment padding).
  int64_t parameter_count() const;

 private:
  std::vector<ParameterView> views_;
  std::unordered_map<std::string, size_t> index_;
  int64_t total_ = 0;
};

template <class T>
inline std::span<T> view(std::vector<T>& buffer, const ParameterView& v) {
  return std::span<T>(buffer.data() + v.offset, static_cast<size_t>(v.size));
}

}  // namespace starflow::core
