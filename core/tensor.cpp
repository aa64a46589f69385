// Shape formatting shared by error messages and tables.
#include "core/tensor.h"

namespace starflow::core {

std::string shape_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace starflow::core
