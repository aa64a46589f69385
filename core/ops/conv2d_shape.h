// The shape of a 2-D convolution over NCHW tensors, shared by the ops (core/ops/cpu/conv2d.h) and the models.
#pragma once
#include <cstdint>

namespace starflow::core {

struct Conv2dShape {
  int64_t batch = 1, in_channels = 1, height = 1, width = 1;
  int64_t out_channels = 1, kernel = 3, stride = 1, padding = 0;
  // Per-side zero padding where it is not symmetric (the SD VAE's downsampler pads only right and bottom, by 1):
  // a negative value means `padding`, so the eight-field initialisers used everywhere keep their meaning.
  int64_t pad_top = -1, pad_left = -1, pad_bottom = -1, pad_right = -1;

  int64_t padding_top() const { return pad_top < 0 ? padding : pad_top; }
  int64_t padding_left() const { return pad_left < 0 ? padding : pad_left; }
  int64_t padding_bottom() const { return pad_bottom < 0 ? padding : pad_bottom; }
  int64_t padding_right() const { return pad_right < 0 ? padding : pad_right; }
  int64_t out_height() const { return (height + padding_top() + padding_bottom() - kernel) / stride + 1; }
  int64_t out_width() const { return (width + padding_left() + padding_right() - kernel) / stride + 1; }
  int64_t weight_size() const { return out_channels * in_channels * kernel * kernel; }
};

}  // namespace starflow::core
