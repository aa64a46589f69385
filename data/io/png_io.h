// PNG in and out: decoding any PNG (8/16-bit; gray, gray+alpha, RGB, RGBA, palette; interlaced or not) to
// gray or RGB, encoding gray/RGB 8-bit images, and the sample grids the sampling and demo jobs write.
// libpng's errors become one-line FileErrors naming the file; nothing leaks on any path.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "core/tensor.h"

namespace starflow::data {

// What a decoded image is converted to. Alpha is composited on white (transparent emoji become
// white-background pictures); RGB → gray uses the ITU-R 601 luma weights (0.299, 0.587, 0.114), as PIL's
// convert("L"). Both act on the stored sRGB values, without linearising.
enum class ColorMode : int { kGray = 1, kRgb = 3 };

// An 8-bit image, rows top to bottom, channels interleaved (H×W×C), C = 1 (gray) or 3 (RGB).
struct Image {
  int64_t width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

// Decoders; `name` is what errors call the data (its file). 16-bit samples are rounded to 8 bits by
// decode_png and keep their precision in decode_png_float, whose output is planar [C, H, W] in [0, 1].
Image decode_png(std::span<const uint8_t> bytes, ColorMode mode, const std::filesystem::path& name);
core::Tensor<float> decode_png_float(std::span<const uint8_t> bytes, ColorMode mode, const std::filesystem::path& name);
Image read_png(const std::filesystem::path& path, ColorMode mode);
core::Tensor<float> read_png_float(const std::filesystem::path& path, ColorMode mode);

// Encoders for gray or RGB 8-bit images. write_png goes through a temporary file and a rename.
std::vector<uint8_t> encode_png(const Image& image);
void write_png(const std::filesystem::path& path, const Image& image);

// Float images → [0, 255]: kMinusOneToOne is the models' range (x + 1) / 2, kZeroToOne is plain.
enum class PixelRange { kMinusOneToOne, kZeroToOne };

struct GridOptions {
  PixelRange range = PixelRange::kMinusOneToOne;
  int64_t border = 2;          // pixels around and between tiles
  uint8_t border_value = 128;  // mid gray: visible against the black Fashion-MNIST and the white emoji
};

// Tiles images [N, C, H, W] (C = 1 or 3) row-major into a rows×cols grid; slots past N are left at
// border_value. Values are clamped to the range; NaN/±inf are drawn black and counted, so the caller can
// warn about a diverged sample instead of losing the grid. Throws std::invalid_argument for a bad shape
// or a grid too small for N.
struct GridResult {
  Image image;
  int64_t non_finite_values = 0;
};
GridResult image_grid(std::span<const float> images, const core::Shape& shape, int64_t rows, int64_t cols,
                      const GridOptions& options = {});
// Builds the grid and writes it as one PNG; returns the count of non-finite values.
int64_t write_image_grid(const std::filesystem::path& path, std::span<const float> images, const core::Shape& shape,
                         int64_t rows, int64_t cols, const GridOptions& options = {});
int64_t write_image_grid(const std::filesystem::path& path, const core::Tensor<float>& images, int64_t rows,
                         int64_t cols, const GridOptions& options = {});

}  // namespace starflow::data
