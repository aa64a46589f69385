// T5's relative position bias (encoder: bidirectional). Only block 0 holds relative_attention_bias.weight
// [num_buckets, H]; the bias it gives, bias[h, i, j] = W[bucket(j − i), h], is added to the scores of every block.
// The bucket of a distance is computed with upstream's float32 arithmetic, so the table is upstream's bit for bit.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace starflow::core {

// The bucket of relative position r = key position − query position: buckets [0, nb/2) for keys at or left of
// the query, [nb/2, nb) to its right; within a side, distances below nb/4 exactly, the rest log-spaced up to
// max_distance and clamped to the side's last bucket. The logarithm, the division by log(max_distance / (nb/4))
// and the product are float32 and then truncated, as `torch.log(n.float() / max_exact) / math.log(...) * ...`
// followed by `.to(torch.long)` computes them.
inline int64_t t5_relative_bucket(int64_t relative_position, int64_t num_buckets, int64_t max_distance) {
  const int64_t half = num_buckets / 2;
  const int64_t base = relative_position > 0 ? half : 0;
  const int64_t n = relative_position < 0 ? -relative_position : relative_position;
  const int64_t max_exact = half / 2;
  if (n < max_exact) return base + n;
  const float ratio = static_cast<float>(n) / static_cast<float>(max_exact);
  const float log_range = static_cast<float>(std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  const float scaled = std::log(ratio) / log_range * static_cast<float>(half - max_exact);
  return base + std::min<int64_t>(max_exact + static_cast<int64_t>(scaled), half - 1);
}

// bias [H, S, S] of a sequence of length S from W [num_buckets, H] (host memory; copies of W's values, no
// arithmetic, so any element type works).
template <class T>
std::vector<T> t5_position_bias(const T* w, int64_t num_buckets, int64_t max_distance, int64_t H, int64_t S) {
  std::vector<int64_t> bucket_of(static_cast<size_t>(2 * S - 1));  // by r + S − 1, r = j − i in (−S, S)
  for (int64_t r = -(S - 1); r <= S - 1; ++r) bucket_of[r + S - 1] = t5_relative_bucket(r, num_buckets, max_distance);
  std::vector<T> bias(static_cast<size_t>(H * S * S));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < S; ++i)
      for (int64_t j = 0; j < S; ++j) bias[(h * S + i) * S + j] = w[bucket_of[j - i + S - 1] * H + h];
  return bias;
}

}  // namespace starflow::core
