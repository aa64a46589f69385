// ParameterLayout bookkeeping and the shard ↔ whole-tensor index map.
#include "core/models/parameter_layout.h"

#include <stdexcept>

namespace starflow::core {

int64_t ParameterLayout::add(const std::string& name, Shape global_shape, TensorShard shard) {
  if (index_.count(name)) throw std::logic_error("parameter '" + name + "' added twice");
  Shape local = global_shape;
  if (shard.split()) {
    if (shard.dim >= static_cast<int>(global_shape.size()) || shard.groups < 1 || shard.part < 0 ||
        shard.part >= shard.parts)
      throw std::logic_error("parameter '" + name + "': invalid shard");
    const int64_t extent = global_shape[shard.dim];
    bool blocks_split = extent % (shard.groups * shard.parts) == 0;
    if (!shard.sizes.empty()) {
      int64_t sum = 0;
      blocks_split = shard.dim == 0;
      for (int64_t b : shard.sizes) sum += b, blocks_split = blocks_split && b % shard.parts == 0;
      blocks_split = blocks_split && sum == extent;
      shard.groups = static_cast<int64_t>(shard.sizes.size());
    }
    if (!blocks_split)
      throw std::invalid_argument("parameter '" + name + "' of shape " + shape_string(global_shape) +
                                  ": dimension " + std::to_string(shard.dim) + " (" + std::to_string(extent) +
                                  ") does not split into " + std::to_string(shard.parts) + " tensor-parallel parts");
    local[shard.dim] = extent / shard.parts;
    sharded_ = true;
  } else {
    shard = {};
  }
  const int64_t offset = (total_ + 15) / 16 * 16;
  ParameterView v{name, std::move(local), offset, 0, std::move(global_shape), shard};
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

int64_t ParameterLayout::global_parameter_count() const {
  int64_t n = 0;
  for (const auto& v : views_) n += numel(v.global_shape);
  return n;
}

void for_each_global_run(const ParameterView& v, int64_t begin, int64_t end,
                         const std::function<void(int64_t, int64_t, int64_t)>& fn) {
  if (begin >= end) return;
  const TensorShard& s = v.shard;
  if (!s.split()) {
    fn(begin, begin, end - begin);
    return;
  }
  // Row length (elements per index of dimension 0) in the local and the global tensor.
  const int64_t cols_global = v.global_shape.size() > 1 ? numel(v.global_shape) / v.global_shape[0] : 1;
  if (s.dim == 0) {
    // Whole rows move. Block g of the global rows holds this part's rows [part·b, (part+1)·b), b = its extent /
    // parts; locally the parts' rows of the blocks lie back to back. Each block's run is contiguous both ways.
    int64_t at = begin, local_row0 = 0, global_row0 = 0;
    for (int64_t g = 0; g < s.groups && at < end; ++g) {
      const int64_t global_rows = s.block(g, v.global_shape[0]), local_rows = global_rows / s.parts;
      const int64_t block_end = (local_row0 + local_rows) * cols_global;  // local element index
      if (at < block_end) {
        const int64_t n = std::min(end, block_end) - at;
        const int64_t global_row = global_row0 + s.part * local_rows + (at / cols_global - local_row0);
        fn(at, global_row * cols_global + at % cols_global, n);
        at += n;
      }
      local_row0 += local_rows;
      global_row0 += global_rows;
    }
  } else {
    // Columns [part·c, (part+1)·c) of every row (groups = 1 for column splits).
    const int64_t c = v.shape[1];
    int64_t at = begin;
    while (at < end) {
      const int64_t row = at / c, col = at % c;
      const int64_t n = std::min(end, (row + 1) * c) - at;
      fn(at, row * cols_global + s.part * c + col, n);
      at += n;
    }
  }
}

}  // namespace starflow::core
