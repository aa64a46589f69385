// Tensor-parallel linears (Megatron's ColumnParallelLinear and RowParallelLinear, and the conjugate pairs of
// its mappings.py) over the flat parameter buffer: each type owns its collective, so a layer never places an
// all-reduce by hand.
//  - Column-parallel: the weight's output rows are split over the TP group (each rank computes whole heads or
//    hidden units); the input is whole on every rank. Forward needs no collective; backward all-reduces the
//    input gradient (each rank's is a partial sum over its outputs).
//  - Row-parallel: the weight's input columns are split; each rank's product is a partial sum, all-reduced in
//    forward, and the bias is added after the reduce (once, not once per rank). Backward needs no collective:
//    the output gradient is whole on every rank, and the bias gradient is the same everywhere (replicated).
// With no TP group (or one rank) both are plain linears.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/communicator.h"
#include "core/models/parameter_layout.h"

namespace starflow::core {

// Sums a tensor over the TP group, in place, ordered on the backend's stream (no-op without a group).
template <class Backend>
void tp_all_reduce(const Backend& be, Communicator* tp, typename Backend::Scalar* data, int64_t n) {
  if (tp && tp->size() > 1) tp->all_reduce_sum(data, n, Backend::kElementType, be.stream());
}

template <class Backend>
struct ColumnParallelLinear {
  using T = typename Backend::Scalar;
  int64_t weight = -1, bias = -1;  // offsets in the flat buffers (bias −1: none)
  int64_t in = 0, out = 0;         // this rank's shapes: W [out, in]
  Communicator* tp = nullptr;      // the TP group, when the weight is split over it

  // Registers `name`.weight [global_out, in] and (with_bias) `name`.bias [global_out], split in `groups` equal
  // blocks of rows each split over the group (QKV: 3, so a rank holds its heads' q, k and v rows), or in blocks
  // of the given `sizes` (grouped-query QKV).
  static ColumnParallelLinear add_to(ParameterLayout& layout, const std::string& name, int64_t in_features,
                                     int64_t global_out, Communicator* tp, int rank, int parts, int64_t groups = 1,
                                     bool with_bias = true, std::vector<int64_t> sizes = {}) {
    const TensorShard shard{0, groups, rank, parts, std::move(sizes)};
    ColumnParallelLinear l;
    l.weight = layout.add(name + ".weight", {global_out, in_features}, shard);
    if (with_bias) l.bias = layout.add(name + ".bias", {global_out}, shard);
    l.in = in_features;
    l.out = global_out / parts;
    l.tp = parts > 1 ? tp : nullptr;
    return l;
  }
  // y [rows, out] = x [rows, in] · Wᵀ + b.
  void forward(const Backend& be, const T* P, const T* x, T* y, int64_t rows) const {
    be.linear_forward(y, x, P + weight, bias >= 0 ? P + bias : nullptr, rows, in, out);
  }
  // The same with the decode linear, reading the weight from `W` (the backend's decode weights).
  template <class DecodeWeights>
  void forward_decode(const Backend& be, const DecodeWeights& W, const T* P, const T* x, T* y, int64_t rows) const {
    be.decode_linear(y, x, W.data + weight, bias >= 0 ? P + bias : nullptr, rows, in, out, W.layout);
  }
  // Accumulates dW, db (G null: input gradient only); writes dx [rows, in] (or adds to it: accumulate), summed
  // over the TP group unless `reduce` is false (two linears reading one input: the second's reduce covers both).
  void backward(const Backend& be, const T* P, T* G, const T* dy, const T* x, T* dx, int64_t rows,
                bool accumulate = false, bool reduce = true) const {
    be.linear_backward(dx, G ? G + weight : nullptr, G && bias >= 0 ? G + bias : nullptr, dy, x, P + weight, rows, in,
                       out, accumulate);
    if (reduce) tp_all_reduce(be, tp, dx, rows * in);
  }
};

template <class Backend>
struct RowParallelLinear {
  using T = typename Backend::Scalar;
  int64_t weight = -1, bias = -1;
  int64_t in = 0, out = 0;  // this rank's shapes: W [out, in], in = global_in / parts
  Communicator* tp = nullptr;

  static RowParallelLinear add_to(ParameterLayout& layout, const std::string& name, int64_t global_in,
                                  int64_t out_features, Communicator* tp, int rank, int parts, bool with_bias = true) {
    RowParallelLinear l;
    l.weight = layout.add(name + ".weight", {out_features, global_in}, TensorShard{1, 1, rank, parts});
    if (with_bias) l.bias = layout.add(name + ".bias", {out_features});
    l.in = global_in / parts;
    l.out = out_features;
    l.tp = parts > 1 ? tp : nullptr;
    return l;
  }
  // y [rows, out] = Σ_TP(x · Wᵀ) + b + residual (residual [rows, out], not aliasing y; null: none).
  void forward(const Backend& be, const T* P, const T* x, T* y, const T* residual, int64_t rows) const {
    be.linear_forward(y, x, P + weight, tp ? nullptr : bias_of(P), rows, in, out);
    finish(be, P, y, residual, rows);
  }
  template <class DecodeWeights>
  void forward_decode(const Backend& be, const DecodeWeights& W, const T* P, const T* x, T* y, const T* residual,
                      int64_t rows) const {
    be.decode_linear(y, x, W.data + weight, tp ? nullptr : bias_of(P), rows, in, out, W.layout);
    finish(be, P, y, residual, rows);
  }
  // dy [rows, out] is whole on every rank. Accumulates dW and db; writes dx [rows, in] (this rank's columns).
  void backward(const Backend& be, const T* P, T* G, const T* dy, const T* x, T* dx, int64_t rows) const {
    be.linear_backward(dx, G ? G + weight : nullptr, G && bias >= 0 ? G + bias : nullptr, dy, x, P + weight, rows, in,
                       out);
  }

 private:
  const T* bias_of(const T* P) const { return bias >= 0 ? P + bias : nullptr; }
  // Without TP the bias is already in (the linear added it): only the residual is left.
  void finish(const Backend& be, const T* P, T* y, const T* residual, int64_t rows) const {
    if (!tp) {
      if (residual) be.add_bias_residual(y, nullptr, residual, rows, out);
      return;
    }
    tp_all_reduce(be, tp, y, rows * out);
    if (residual || bias >= 0) be.add_bias_residual(y, bias_of(P), residual, rows, out);
  }
};

}  // namespace starflow::core
