// STARFlow rotary position embedding on the CPU (spec §1.5): the axial angle table, its cos/sin, and the
// adjacent-pair rotation (forward, and its inverse, which is also its backward; its body: rope_impl.h, at the
// host's width).
// The table is built with the official code's float32 rounding so it matches golden `aux.rope.*`.
#include "core/ops/cpu/rope.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/build_config.h"
#include "core/ops/cpu/cpu_isa.h"
#include "core/ops/cpu/rope_impl.h"
#include "core/ops/cpu/small_batch_avx512.h"

namespace starflow::core::cpu {
namespace {

// inv_freq_k = 1 / 10000^(2k / dim) for k < dim/2, rounded the way PyTorch's float32 code rounds it:
// the exponent is a float32 quotient, the power and the reciprocal are float32 results.
std::vector<float> inverse_frequencies(int64_t dim) {
  std::vector<float> freqs(static_cast<size_t>(dim / 2));
  for (int64_t k = 0; k < dim / 2; ++k) {
    const float exponent = static_cast<float>(2 * k) / static_cast<float>(dim);
    const float power = static_cast<float>(std::pow(10000.0, static_cast<double>(exponent)));
    freqs[static_cast<size_t>(k)] = 1.0f / power;
  }
  return freqs;
}

void check_positive(int64_t value, const char* name) {
  if (value <= 0)
    throw std::invalid_argument(std::string("rope_angles: ") + name + " must be positive, got " +
                                std::to_string(value));
}

}  // namespace

std::vector<float> rope_angles(int64_t head_dim, int64_t grid_h, int64_t grid_w, int64_t pt_seq_len,
                               bool has_text_axis, int64_t text_len, bool include_text) {
  check_positive(grid_h, "grid_h");
  check_positive(grid_w, "grid_w");
  check_positive(pt_seq_len, "pt_seq_len");
  // Every angle slot drives one adjacent pair; the spatial slots split evenly between the two axes.
  constexpr int64_t text_slots = 8;
  int64_t spatial_slots = 0;
  if (has_text_axis) {
    spatial_slots = head_dim / 2 - text_slots;
    if (head_dim % 2 != 0 || spatial_slots <= 0 || spatial_slots % 2 != 0)
      throw std::invalid_argument(
          "rope_angles: with a text axis head_dim/2 - 8 must be positive and even, got head_dim " +
          std::to_string(head_dim));
  } else {
    spatial_slots = head_dim / 2;
    if (head_dim <= 0 || head_dim % 4 != 0)
      throw std::invalid_argument("rope_angles: without a text axis head_dim must be a positive multiple of 4, got " +
                                  std::to_string(head_dim));
  }
  if (include_text && !has_text_axis)
    throw std::invalid_argument("rope_angles: text rows requested but the model has no text axis (txt_size = 0)");
  if (include_text) check_positive(text_len, "text_len");

  const std::vector<float> spatial = inverse_frequencies(spatial_slots);  // spatial_slots/2 per axis
  const std::vector<float> text = has_text_axis ? inverse_frequencies(2 * text_slots) : std::vector<float>{};
  const int64_t per_axis = spatial_slots / 2;
  const int64_t n_text = include_text ? text_len : 0;
  const int64_t n_rows = n_text + grid_h * grid_w;
  std::vector<float> angles(static_cast<size_t>(n_rows * head_dim), 0.0f);

  // Positions are float32 like the official arange(n)/n*P; slots default to angle 0 (no rotation).
  auto write_row = [&](int64_t row, float r, float c, float e) {
    float* out = angles.data() + row * head_dim;
    auto put = [&](int64_t slot, float angle) { out[2 * slot] = out[2 * slot + 1] = angle; };
    for (int64_t i = 0; i < per_axis; ++i) {
      put(i, r * spatial[static_cast<size_t>(i)]);
      put(per_axis + i, c * spatial[static_cast<size_t>(i)]);
    }
    for (int64_t j = 0; j < static_cast<int64_t>(text.size()); ++j)
      put(spatial_slots + j, e * text[static_cast<size_t>(j)]);
  };

  const float P = static_cast<float>(pt_seq_len);
  for (int64_t j = 0; j < n_text; ++j)
    write_row(j, 0.0f, 0.0f, (static_cast<float>(j) / static_cast<float>(text_len)) * P);
  // s = P/√(h·w): image positions keep the training-grid scale at other resolutions (s = 1 when trained).
  const float grid_side = static_cast<float>(std::sqrt(static_cast<double>(grid_h * grid_w)));
  for (int64_t t = 0; t < grid_h * grid_w; ++t) {
    const float r = (static_cast<float>(t / grid_w) / grid_side) * P;
    const float c = (static_cast<float>(t % grid_w) / grid_side) * P;
    write_row(n_text + t, r, c, 0.0f);
  }
  return angles;
}

template <class T>
RopeTable<T> make_rope_table(const std::vector<float>& angles, int64_t head_dim, bool half_split) {
  if (head_dim <= 0 || head_dim % 2 != 0 || static_cast<int64_t>(angles.size()) % head_dim != 0)
    throw std::invalid_argument("make_rope_table: angle table of " + std::to_string(angles.size()) +
                                " values is not a whole number of rows of even head_dim " + std::to_string(head_dim));
  RopeTable<T> table;
  table.head_dim = head_dim;
  table.half_split = half_split;
  table.rows = static_cast<int64_t>(angles.size()) / head_dim;
  table.cos.resize(angles.size());
  table.sin.resize(angles.size());
  for (size_t i = 0; i < angles.size(); ++i) {
    const double angle = angles[i];
    table.cos[i] = static_cast<T>(std::cos(angle));
    table.sin[i] = static_cast<T>(std::sin(angle));
  }
  return table;
}

template <class T>
void rope_rotate(T* x, int64_t batch, int64_t rows, int64_t batch_stride, int64_t row_stride, int64_t n_heads,
                 const RopeTable<T>& table, int64_t row_offset, bool inverse) {
  const int64_t dh = table.head_dim;
  if (row_offset < 0 || row_offset + rows > table.rows)
    throw std::invalid_argument("rope_rotate: rows [" + std::to_string(row_offset) + ", " +
                                std::to_string(row_offset + rows) + ") outside a table of " +
                                std::to_string(table.rows) + " rows");
  // Rotating by −φ only flips the sign of sin. The half-split layout stays on the baseline form on AVX-512 hosts:
  // its stride-2 angle loads vectorise worse at 16 lanes (135 against 103 µs for a training-size qkv on Zen 4).
#ifdef STARFLOW_AVX512_KERNELS
  if constexpr (std::is_same_v<T, float>)
    if (use_avx512() && !table.half_split)
      return avx512::rope_rotate(x, batch, rows, batch_stride, row_stride, n_heads, table.cos.data(), table.sin.data(),
                                 dh, row_offset, inverse);
#endif
  if (table.half_split)
    rope_rotate_body<T, true>(x, batch, rows, batch_stride, row_stride, n_heads, table.cos.data(), table.sin.data(),
                              dh, row_offset, inverse);
  else
    rope_rotate_body<T, false>(x, batch, rows, batch_stride, row_stride, n_heads, table.cos.data(), table.sin.data(),
                               dh, row_offset, inverse);
}

template RopeTable<float> make_rope_table<float>(const std::vector<float>&, int64_t, bool);
template RopeTable<double> make_rope_table<double>(const std::vector<float>&, int64_t, bool);
template void rope_rotate<float>(float*, int64_t, int64_t, int64_t, int64_t, int64_t, const RopeTable<float>&,
                                 int64_t, bool);
template void rope_rotate<double>(double*, int64_t, int64_t, int64_t, int64_t, int64_t, const RopeTable<double>&,
                                  int64_t, bool);

}  // namespace starflow::core::cpu
