// One flat parameter buffer, one flat gradient buffer, and a table of named views into them under the
// official ml-starflow state_dict names. Checkpoints, import/export and the golden tests use these names.
// Under tensor parallelism a view may hold only this rank's shard of its tensor; the view knows the
// global shape and how its shard maps onto it, so every file format stays layout-free.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"

namespace starflow::core {

// How a tensor is split over `parts` tensor-parallel ranks: along dimension `dim` (0: rows, 1: columns of a
// [rows, cols] weight; a 1-D bias splits along 0), after first cutting that dimension into `groups` equal
// blocks that are each split into `parts` (QKV: groups = 3, so rank r holds its heads' q, k and v rows).
// `sizes` (dim 0 only): blocks of these extents instead of equal ones (grouped-query QKV: nH·dh, nKV·dh, nKV·dh).
// dim < 0: not split (every rank holds the whole tensor).
struct TensorShard {
  int dim = -1;
  int64_t groups = 1;
  int part = 0, parts = 1;
  std::vector<int64_t> sizes = {};
  bool split() const { return dim >= 0 && parts > 1; }
  // The global extent of block g of dimension `dim` (whose whole extent is `extent`).
  int64_t block(int64_t g, int64_t extent) const { return sizes.empty() ? extent / groups : sizes[g]; }
};

struct ParameterView {
  std::string name;     // official state_dict name, e.g. "blocks.2.attn_blocks.0.attention.qkv.weight"
  Shape shape;          // what this rank holds (the global shape unless sharded)
  int64_t offset = 0;   // in elements, into the flat buffers
  int64_t size = 0;     // elements this rank holds
  Shape global_shape;   // the whole tensor, as the official model and every file have it
  TensorShard shard;
};

class ParameterLayout {
 public:
  // Appends a tensor (this rank's shard of it when `shard` splits it); returns its offset. Offsets are
  // 16-element aligned so every view starts on a 64-byte boundary (vector loads, one-to-one GPU copies).
  // Throws std::invalid_argument when the shard does not divide the tensor.
  int64_t add(const std::string& name, Shape global_shape, TensorShard shard = {});
  const std::vector<ParameterView>& views() const { return views_; }
  const ParameterView* find(const std::string& name) const;
  const ParameterView& at(const std::string& name) const;  // throws naming the tensor
  int64_t total_size() const { return total_; }
  // Elements actually held by parameters (the total without the alignment padding).
  int64_t parameter_count() const;
  // Parameters of the whole model (every tensor at its global shape).
  int64_t global_parameter_count() const;
  bool sharded() const { return sharded_; }

 private:
  std::vector<ParameterView> views_;
  std::unordered_map<std::string, size_t> index_;
  int64_t total_ = 0;
  bool sharded_ = false;
};

template <class T>
inline std::span<T> view(std::vector<T>& buffer, const ParameterView& v) {
  return std::span<T>(buffer.data() + v.offset, static_cast<size_t>(v.size));
}

// Calls fn(local_index, global_index, count) for the maximal runs of the view's elements [begin, end)
// (indices into its local tensor) that are contiguous in the flattened global tensor, in local order.
void for_each_global_run(const ParameterView& v, int64_t begin, int64_t end,
                         const std::function<void(int64_t, int64_t, int64_t)>& fn);

// The view's shard of a whole tensor (global: numel(global_shape) elements) into local (v.size elements).
template <class T>
void extract_shard(const ParameterView& v, const T* global, T* local) {
  for_each_global_run(v, 0, v.size, [&](int64_t l, int64_t g, int64_t n) {
    for (int64_t i = 0; i < n; ++i) local[l + i] = global[g + i];
  });
}
// The reverse: writes the view's shard into its place in the whole tensor.
template <class T>
void place_shard(const ParameterView& v, const T* local, T* global) {
  for_each_global_run(v, 0, v.size, [&](int64_t l, int64_t g, int64_t n) {
    for (int64_t i = 0; i < n; ++i) global[g + i] = local[l + i];
  });
}

}  // namespace starflow::core
