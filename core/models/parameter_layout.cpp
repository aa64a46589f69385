// ParameterLayout bookkeeping.
#include "core/models/parameter_layout.h"

#include <stdexcept>

namespace starflow::core {

int64_t ParameterLayout::add(const std::string& name, Shape shape) {
  if (index_.count(name)) throw std::logic_error("parameter '" + name + "' added twice");
  const int64_t offset = (total_ + 15) / 16 * 16;
  ParameterView v{name, std::move(shape), offset, 0};
  v.size = numel(v.shape);
  total_ = offset + v.size;
  index_[name] = views_.size();
  views_.push_back(std::move(v));
  return offset;
}

const ParameterView* ParameterLayout::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &views_[it->second];
}

const ParameterView& ParameterLayout::at(const std::string& name) const {
  const ParameterView* v = find(name);
  if (!v) throw std::out_of_range("no parameter named '" + name + "'");
  return *v;
}

int64_t ParameterLayout::parameter_count() const {
  int64_t n = 0;
  for (const auto& v : views_) n += v.size;
  return n;
}

}  // namespace starflow::core
