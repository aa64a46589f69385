// Nearest-neighbour 2× upsampling and its adjoint (2×2 sum pooling).
#include "core/ops/cpu/upsample.h"

namespace starflow::core::cpu {

namespace {

constexpr int64_t kParallelElements = 32 * 1024;

}  // namespace

template <class T>
void upsample_nearest2x_forward(T* out, const T* in, int64_t planes, int64_t H, int64_t W) {
  const int64_t W2 = 2 * W;
#pragma omp parallel for schedule(static) if (planes * H * W > kParallelElements)
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t y = 0; y < H; ++y) {
      const T* src = in + (p * H + y) * W;
      T* top = out + (p * 2 * H + 2 * y) * W2;
      T* bottom = top + W2;
      for (int64_t x = 0; x < W; ++x) {
        top[2 * x] = top[2 * x + 1] = src[x];
        bottom[2 * x] = bottom[2 * x + 1] = src[x];
      }
    }
  }
}

template <class T>
void upsample_nearest2x_backward(T* din, const T* dout, int64_t planes, int64_t H, int64_t W) {
  const int64_t W2 = 2 * W;
#pragma omp parallel for schedule(static) if (planes * H * W > kParallelElements)
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t y = 0; y < H; ++y) {
      const T* top = dout + (p * 2 * H + 2 * y) * W2;
      const T* bottom = top + W2;
      T* dst = din + (p * H + y) * W;
      for (int64_t x = 0; x < W; ++x) dst[x] = (top[2 * x] + top[2 * x + 1]) + (bottom[2 * x] + bottom[2 * x + 1]);
    }
  }
}

template void upsample_nearest2x_forward<float>(float*, const float*, int64_t, int64_t, int64_t);
template void upsample_nearest2x_forward<double>(double*, const double*, int64_t, int64_t, int64_t);
template void upsample_nearest2x_backward<float>(float*, const float*, int64_t, int64_t, int64_t);
template void upsample_nearest2x_backward<double>(double*, const double*, int64_t, int64_t, int64_t);

}  // namespace starflow::core::cpu
