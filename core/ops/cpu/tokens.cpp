// CPU token layout ops (pure data movement).
#include "core/ops/cpu/tokens.h"

#include <cstring>

namespace starflow::core::cpu {

template <class T>
void patchify(T* out, const T* in, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p) {
  const int64_t h = H / p, w = W / p, D = p * p * C;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          const int64_t token = (y / p) * w + x / p, f = ((y % p) * p + x % p) * C + c;
          out[(b * h * w + token) * D + f] = in[((b * C + c) * H + y) * W + x];
        }
}

template <class T>
void unpatchify(T* out, const T* in, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p) {
  const int64_t h = H / p, w = W / p, D = p * p * C;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          const int64_t token = (y / p) * w + x / p, f = ((y % p) * p + x % p) * C + c;
          out[((b * C + c) * H + y) * W + x] = in[(b * h * w + token) * D + f];
        }
}

template <class T>
void permute_tokens(T* out, const T* in, int64_t B, int64_t T_, int64_t D, bool flip) {
  if (!flip) {
    std::memcpy(out, in, sizeof(T) * B * T_ * D);
    return;
  }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T_; ++t)
      std::memcpy(out + (b * T_ + t) * D, in + (b * T_ + (T_ - 1 - t)) * D, sizeof(T) * D);
}

#define STARFLOW_INSTANTIATE(T)                                                               \
  template void patchify<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t);       \
  template void unpatchify<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t);     \
  template void permute_tokens<T>(T*, const T*, int64_t, int64_t, int64_t, bool);
STARFLOW_INSTANTIATE(float)
STARFLOW_INSTANTIATE(double)
#undef STARFLOW_INSTANTIATE

}  // namespace starflow::core::cpu
