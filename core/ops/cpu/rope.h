// STARFlow rotary position embedding (spec §1.5): the angle table and the adjacent-pair rotation.
#pragma once
#include <cstdint>
#include <vector>

namespace starflow::core::cpu {

// Angle table φ [L + T, head_dim] of one block, each angle duplicated in adjacent pairs, rows in sequence
// order (text rows first when include_text, then image tokens at their post-permutation index t).
// has_text_axis: the model's txt_size > 0, which selects the 24+8-style split in every block (dh/2 − 8
// spatial slots + 8 text-axis slots) even in blocks that carry no text. text_len = txt_size (L) is
// used for the text positions j·pt_seq_len/L; include_text adds those L rows at the front.
// grid_h × grid_w image tokens; pt_seq_len is the training token-grid side (img_size / patch_size).
// Frequencies and text positions are float32 values, as in the official code.
std::vector<float> rope_angles(int64_t head_dim, int64_t grid_h, int64_t grid_w, int64_t pt_seq_len,
                               bool has_text_axis, int64_t text_len, bool include_text);

// cos/sin of an angle table, in the compute type. half_split: the official `hf_style_rope`, which rotates the
// pairs (m, m + dh/2) by angle m (table entry 2m) instead of the adjacent pairs (2m, 2m+1): a property of the
// model's table, so every rotation of that model follows it.
template <class T>
struct RopeTable {
  int64_t rows = 0, head_dim = 0;
  bool half_split = false;
  std::vector<T> cos, sin;
};
template <class T>
RopeTable<T> make_rope_table(const std::vector<float>& angles, int64_t head_dim, bool half_split = false);

// Rotates, in place, n_heads head vectors of every sequence row: x points at element 0 of head 0 of
// (batch 0, row 0); rows are row_stride apart, batches batch_stride apart; heads are contiguous. Row s uses
// table row (row_offset + s). inverse = rotate by −φ (this is the backward pass of the rotation).
// For q and k inside a qkv buffer [B, S, 3C] call it once with n_heads = 2·nH (q and k are adjacent).
template <class T>
void rope_rotate(T* x, int64_t batch, int64_t rows, int64_t batch_stride, int64_t row_stride, int64_t n_heads,
                 const RopeTable<T>& table, int64_t row_offset, bool inverse);

}  // namespace starflow::core::cpu
