// The shape of a 2-D convolution over NCHW tensors, shared by the ops (core/ops/cpu/conv2d.h) and the models.
#pragma once
#include <cstdint>

namespace starflow::core {

struct Conv2dShape {
  int64_t batch = 1, in_channels = 1, height = 1, width = 1;
  int64_t out_channels = 1, kernel = 3, stride = 1, padding = 0;
  int64_t out_height() const { return (height + 2 * padding - kernel) / stride + 1; }
  int64_t out_width() const { return (width + 2 * padding - kernel) / stride + 1; }
  int64_t weight_size() const { return out_channels * in_channels * kernel * kernel; }
};

}  // namespace starflow::core
