// Shapes and a small owning tensor for I/O, tests and model state. Ops themselves take raw pointers and
// sizes (llm.c style): the model owns every buffer and the ops never allocate.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace starflow::core {

using Shape = std::vector<int64_t>;

inline int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const Shape& shape);  // "[3, 4, 8, 8]"

template <class T>
struct Tensor {
  Shape shape;
  std::vector<T> data;
  Tensor() = default;
  explicit Tensor(Shape s, T fill = T(0)) : shape(std::move(s)), data(static_cast<size_t>(numel(shape)), fill) {}
  int64_t size() const { return static_cast<int64_t>(data.size()); }
  T* ptr() { return data.data(); }
  const T* ptr() const { return data.data(); }
};

}  // namespace starflow::core
