// Separable resampling with per-output-pixel weight lists, computed once per axis.
#include "data/io/image_resize.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace starflow::data {

namespace {

struct Tap {
  int64_t index;
  float weight;
};

// For each of `out_size` outputs, the source pixels and weights that make it, reading the source window
// [start, start + length) of an axis of `in_size` pixels.
std::vector<std::vector<Tap>> axis_taps(int64_t in_size, double start, double length, int64_t out_size) {
  std::vector<std::vector<Tap>> taps(static_cast<size_t>(out_size));
  const double scale = length / static_cast<double>(out_size);  // source pixels per output pixel
  for (int64_t o = 0; o < out_size; ++o) {
    std::vector<Tap>& list = taps[static_cast<size_t>(o)];
    if (scale >= 1.0) {
      // Box filter: each source pixel weighs by how much of it the output pixel covers.
      const double begin = start + static_cast<double>(o) * scale, end = begin + scale;
      for (int64_t i = static_cast<int64_t>(std::floor(begin)); static_cast<double>(i) < end; ++i) {
        const double overlap = std::min(end, static_cast<double>(i + 1)) - std::max(begin, static_cast<double>(i));
        if (overlap > 1e-9)
          list.push_back({std::clamp<int64_t>(i, 0, in_size - 1), static_cast<float>(overlap / scale)});
      }
    } else {
      // Bilinear between the two nearest source centers; the edges repeat.
      const double center = start + (static_cast<double>(o) + 0.5) * scale - 0.5;
      const double left = std::floor(center);
      const float fraction = static_cast<float>(center - left);
      const int64_t i = static_cast<int64_t>(left);
      list.push_back({std::clamp<int64_t>(i, 0, in_size - 1), 1.0f - fraction});
      list.push_back({std::clamp<int64_t>(i + 1, 0, in_size - 1), fraction});
    }
  }
  return taps;
}

}  // namespace

core::Tensor<float> resize_center_crop(const core::Tensor<float>& image, int64_t height, int64_t width) {
  if (image.shape.size() != 3 || image.shape[0] <= 0 || image.shape[1] <= 0 || image.shape[2] <= 0 ||
      image.size() != core::numel(image.shape))
    throw std::invalid_argument("resize: expected an image [C, H, W], got " + core::shape_string(image.shape));
  if (height <= 0 || width <= 0)
    throw std::invalid_argument("resize: bad target size " + std::to_string(width) + "x" + std::to_string(height));
  const int64_t channels = image.shape[0], in_height = image.shape[1], in_width = image.shape[2];
  if (in_height == height && in_width == width) return image;

  // The largest centered window with the target's aspect ratio.
  double window_width = static_cast<double>(in_width), window_height = static_cast<double>(in_height);
  if (in_width * height > in_height * width)
    window_width = static_cast<double>(in_height) * static_cast<double>(width) / static_cast<double>(height);
  else
    window_height = static_cast<double>(in_width) * static_cast<double>(height) / static_cast<double>(width);
  const auto x_taps = axis_taps(in_width, 0.5 * (static_cast<double>(in_width) - window_width), window_width, width);
  const auto y_taps =
      axis_taps(in_height, 0.5 * (static_cast<double>(in_height) - window_height), window_height, height);

  core::Tensor<float> across(core::Shape{channels, in_height, width});
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t y = 0; y < in_height; ++y) {
      const float* row = image.ptr() + (c * in_height + y) * in_width;
      float* out = across.ptr() + (c * in_height + y) * width;
      for (int64_t x = 0; x < width; ++x) {
        float sum = 0.0f;
        for (const Tap& tap : x_taps[static_cast<size_t>(x)]) sum += tap.weight * row[tap.index];
        out[x] = sum;
      }
    }
  core::Tensor<float> result(core::Shape{channels, height, width});
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t y = 0; y < height; ++y) {
      float* out = result.ptr() + (c * height + y) * width;
      for (const Tap& tap : y_taps[static_cast<size_t>(y)]) {
        const float* row = across.ptr() + (c * in_height + tap.index) * width;
        for (int64_t x = 0; x < width; ++x) out[x] += tap.weight * row[x];
      }
    }
  return result;
}

}  // namespace starflow::data
