// PNG decode/encode over libpng, and the sample-grid writer.
//
// libpng reports errors by longjmp to a setjmp point. Throwing a C++ exception through libpng's C frames
// instead is undefined (they have no unwind tables), so every libpng call that can fail runs inside a
// small "stage" function that holds setjmp and owns no object with a destructor; the C++ buffers live in
// the caller, which turns a failed stage into a FileError once libpng's frames are gone. The png/info
// structs themselves are owned by RAII holders, so no path leaks them.
#include "data/io/png_io.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/io/files.h"


namespace starflow::data {

using core::io::FileError;
using core::io::fail_file;
using core::io::read_file_bytes;
using core::io::write_file_atomically;

namespace fs = std::filesystem;

namespace {

// Larger sides than any training image; also bounds what a corrupt header can make us allocate.
constexpr png_uint_32 kMaxSide = 16384;
// Deflate cannot expand data more than ~1032:1, so a header claiming more pixels than the file could
// hold is corrupt, and is refused before the allocation it asks for.
constexpr uint64_t kMaxInflateRatio = 1100;

// Trivially destructible, so it may live in frames that longjmp crosses.
struct LibpngError {
  char message[256] = {};
};

void on_libpng_error(png_structp png, png_const_charp message) {
  auto* error = static_cast<LibpngError*>(png_get_error_ptr(png));
  std::snprintf(error->message, sizeof error->message, "%s", message ? message : "unknown libpng error");
  png_longjmp(png, 1);
}

// Warnings are about ancillary chunks (colour profiles, text) that decoding ignores anyway.
void on_libpng_warning(png_structp, png_const_charp) {}

struct MemoryInput {
  const uint8_t* data;
  size_t size;
  size_t offset;
};

void read_from_memory(png_structp png, png_bytep out, size_t length) {
  auto* input = static_cast<MemoryInput*>(png_get_io_ptr(png));
  if (length > input->size - input->offset) png_error(png, "the file is truncated");
  std::memcpy(out, input->data + input->offset, length);
  input->offset += length;
}

class PngReadStruct {
 public:
  explicit PngReadStruct(LibpngError* error) {
    png_ = png_create_read_struct(PNG_LIBPNG_VER_STRING, error, on_libpng_error, on_libpng_warning);
    if (png_) info_ = png_create_info_struct(png_);
  }
  PngReadStruct(const PngReadStruct&) = delete;
  PngReadStruct& operator=(const PngReadStruct&) = delete;
  ~PngReadStruct() { png_destroy_read_struct(&png_, info_ ? &info_ : nullptr, nullptr); }
  bool ok() const { return png_ && info_; }
  png_structp png() const { return png_; }
  png_infop info() const { return info_; }

 private:
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
};

struct PngLayout {
  png_uint_32 width = 0, height = 0;
  int channels = 0;   // 1..4 after expansion: gray, gray+alpha, RGB, RGBA
  int bit_depth = 0;  // 8 or 16
  size_t row_bytes = 0;
};

// Stage 1: header and transforms. Expands palettes, low bit depths and tRNS transparency so that every
// PNG arrives as 8- or 16-bit gray/gray+alpha/RGB/RGBA samples.
bool read_layout_stage(png_structp png, png_infop info, MemoryInput* input, PngLayout* layout) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, input, read_from_memory);
  png_set_user_limits(png, kMaxSide, kMaxSide);
  png_read_info(png, info);
  const int color_type = png_get_color_type(png, info);
  const int bit_depth = png_get_bit_depth(png, info);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  layout->width = png_get_image_width(png, info);
  layout->height = png_get_image_height(png, info);
  layout->channels = png_get_channels(png, info);
  layout->bit_depth = png_get_bit_depth(png, info);
  layout->row_bytes = png_get_rowbytes(png, info);
  return true;
}

// Stage 2: the pixels, then the chunks after them (so a damaged tail is noticed too).
bool read_rows_stage(png_structp png, png_infop info, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, nullptr);
  return true;
}

// The samples of one PNG as libpng delivers them after the stage-1 transforms.
struct DecodedSamples {
  PngLayout layout;
  std::vector<uint8_t> bytes;  // height rows of row_bytes, big-endian when 16-bit
};

DecodedSamples decode_samples(std::span<const uint8_t> bytes, const fs::path& name) {
  static constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kSignature, 8) != 0)
    fail_file(name, bytes.empty() ? "empty file, not a PNG" : "not a PNG file (bad signature)");
  LibpngError error;
  PngReadStruct reader(&error);
  if (!reader.ok()) fail_file(name, "libpng could not allocate its decoder");
  MemoryInput input{bytes.data(), bytes.size(), 0};
  DecodedSamples samples;
  PngLayout& layout = samples.layout;
  if (!read_layout_stage(reader.png(), reader.info(), &input, &layout))
    fail_file(name, std::string("corrupt PNG: ") + error.message);
  if (layout.channels < 1 || layout.channels > 4 || (layout.bit_depth != 8 && layout.bit_depth != 16))
    fail_file(name, "unsupported PNG layout after expansion (" + std::to_string(layout.channels) + " channels, " +
                        std::to_string(layout.bit_depth) + "-bit)");
  const uint64_t raw_bytes = uint64_t{layout.row_bytes} * layout.height;
  if (raw_bytes > kMaxInflateRatio * bytes.size() + (uint64_t{1} << 16))
    fail_file(name, "corrupt PNG: header claims " + std::to_string(layout.width) + "x" + std::to_string(layout.height) +
                        " pixels, more than its " + std::to_string(bytes.size()) + " bytes can hold");
  samples.bytes.resize(raw_bytes);
  std::vector<png_bytep> rows(layout.height);
  for (png_uint_32 y = 0; y < layout.height; ++y) rows[y] = samples.bytes.data() + uint64_t{y} * layout.row_bytes;
  if (!read_rows_stage(reader.png(), reader.info(), rows.data()))
    fail_file(name, std::string("corrupt PNG: ") + error.message);
  return samples;
}

// Converts decoded samples to `mode`, calling store(index, value in [0, 1]) for each output sample in
// planar order index = (c·H + y)·W + x. Alpha is composited on white, colour reduced by luma.
template <class Store>
void convert_samples(const DecodedSamples& samples, ColorMode mode, Store&& store) {
  const PngLayout& layout = samples.layout;
  const bool wide = layout.bit_depth == 16;
  const bool has_alpha = layout.channels == 2 || layout.channels == 4;
  const bool is_color = layout.channels >= 3;
  const int out_channels = static_cast<int>(mode);
  const int64_t plane = int64_t{layout.width} * layout.height;
  const float scale = wide ? 1.0f / 65535.0f : 1.0f / 255.0f;
  for (png_uint_32 y = 0; y < layout.height; ++y) {
    const uint8_t* row = samples.bytes.data() + uint64_t{y} * layout.row_bytes;
    for (png_uint_32 x = 0; x < layout.width; ++x) {
      float value[4];
      for (int c = 0; c < layout.channels; ++c) {
        const uint8_t* sample = row + (uint64_t{x} * layout.channels + c) * (wide ? 2 : 1);
        value[c] = scale * static_cast<float>(wide ? (sample[0] << 8) | sample[1] : sample[0]);
      }
      const int color_count = is_color ? 3 : 1;
      if (has_alpha) {
        const float alpha = value[color_count];
        for (int c = 0; c < color_count; ++c) value[c] = value[c] * alpha + (1.0f - alpha);
      }
      const int64_t pixel = int64_t{y} * layout.width + x;
      if (mode == ColorMode::kGray) {
        store(pixel, is_color ? 0.299f * value[0] + 0.587f * value[1] + 0.114f * value[2] : value[0]);
      } else {
        for (int c = 0; c < out_channels; ++c) store(c * plane + pixel, value[is_color ? c : 0]);
      }
    }
  }
}

void check_mode(ColorMode mode) {
  if (mode != ColorMode::kGray && mode != ColorMode::kRgb)
    throw std::invalid_argument("PNG decode: the color mode must be gray (1) or RGB (3)");
}

uint8_t to_byte(float unit) { return static_cast<uint8_t>(std::lround(std::clamp(unit, 0.0f, 1.0f) * 255.0f)); }

// libpng write side: output goes to a byte vector. An allocation failure must not throw through libpng,
// so it is turned into png_error after the catch block has ended.
void write_to_memory(png_structp png, png_bytep data, size_t length) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  bool failed = false;
  try {
    out->insert(out->end(), data, data + length);
  } catch (...) {
    failed = true;
  }
  if (failed) png_error(png, "out of memory while encoding");
}

void flush_nothing(png_structp) {}

class PngWriteStruct {
 public:
  explicit PngWriteStruct(LibpngError* error) {
    png_ = png_create_write_struct(PNG_LIBPNG_VER_STRING, error, on_libpng_error, on_libpng_warning);
    if (png_) info_ = png_create_info_struct(png_);
  }
  PngWriteStruct(const PngWriteStruct&) = delete;
  PngWriteStruct& operator=(const PngWriteStruct&) = delete;
  ~PngWriteStruct() { png_destroy_write_struct(&png_, info_ ? &info_ : nullptr); }
  bool ok() const { return png_ && info_; }
  png_structp png() const { return png_; }
  png_infop info() const { return info_; }

 private:
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
};

bool write_stage(png_structp png, png_infop info, std::vector<uint8_t>* out, png_uint_32 width, png_uint_32 height,
                 int color_type, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_write_fn(png, out, write_to_memory, flush_nothing);
  png_set_IHDR(png, info, width, height, 8, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  return true;
}

}  // namespace

Image decode_png(std::span<const uint8_t> bytes, ColorMode mode, const fs::path& name) {
  check_mode(mode);
  const DecodedSamples samples = decode_samples(bytes, name);
  Image image;
  image.width = samples.layout.width;
  image.height = samples.layout.height;
  image.channels = static_cast<int>(mode);
  image.pixels.resize(static_cast<size_t>(image.width * image.height * image.channels));
  const int64_t plane = image.width * image.height;
  // convert_samples speaks planar indices; Image is interleaved.
  convert_samples(samples, mode, [&](int64_t index, float value) {
    const int64_t c = index / plane, pixel = index % plane;
    image.pixels[static_cast<size_t>(pixel * image.channels + c)] = to_byte(value);
  });
  return image;
}

core::Tensor<float> decode_png_float(std::span<const uint8_t> bytes, ColorMode mode, const fs::path& name) {
  check_mode(mode);
  const DecodedSamples samples = decode_samples(bytes, name);
  core::Tensor<float> image(core::Shape{static_cast<int64_t>(mode), samples.layout.height, samples.layout.width});
  convert_samples(samples, mode, [&](int64_t index, float value) { image.data[static_cast<size_t>(index)] = value; });
  return image;
}

Image read_png(const fs::path& path, ColorMode mode) { return decode_png(read_file_bytes(path), mode, path); }

core::Tensor<float> read_png_float(const fs::path& path, ColorMode mode) {
  return decode_png_float(read_file_bytes(path), mode, path);
}

std::vector<uint8_t> encode_png(const Image& image) {
  if (image.channels != 1 && image.channels != 3)
    throw std::invalid_argument("encode_png: images have 1 (gray) or 3 (RGB) channels, not " +
                                std::to_string(image.channels));
  if (image.width <= 0 || image.height <= 0 || image.width > kMaxSide || image.height > kMaxSide)
    throw std::invalid_argument("encode_png: bad size " + std::to_string(image.width) + "x" +
                                std::to_string(image.height));
  const uint64_t row_bytes = static_cast<uint64_t>(image.width * image.channels);
  if (image.pixels.size() != row_bytes * static_cast<uint64_t>(image.height))
    throw std::invalid_argument("encode_png: " + std::to_string(image.pixels.size()) + " bytes for a " +
                                std::to_string(image.width) + "x" + std::to_string(image.height) + "x" +
                                std::to_string(image.channels) + " image");
  LibpngError error;
  PngWriteStruct writer(&error);
  if (!writer.ok()) throw std::runtime_error("encode_png: libpng could not allocate its encoder");
  std::vector<png_bytep> rows(static_cast<size_t>(image.height));
  for (int64_t y = 0; y < image.height; ++y)
    rows[static_cast<size_t>(y)] = const_cast<png_bytep>(image.pixels.data() + y * row_bytes);  // libpng only reads
  std::vector<uint8_t> out;
  out.reserve(image.pixels.size() / 2 + 1024);
  const int color_type = image.channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB;
  if (!write_stage(writer.png(), writer.info(), &out, static_cast<png_uint_32>(image.width),
                   static_cast<png_uint_32>(image.height), color_type, rows.data()))
    throw std::runtime_error(std::string("encode_png: libpng failed: ") + error.message);
  return out;
}

void write_png(const fs::path& path, const Image& image) {
  std::vector<uint8_t> bytes;
  try {
    bytes = encode_png(image);
  } catch (const std::exception& e) {
    fail_file(path, e.what());
  }
  write_file_atomically(path, bytes);
}

GridResult image_grid(std::span<const float> images, const core::Shape& shape, int64_t rows, int64_t cols,
                      const GridOptions& options) {
  if (shape.size() != 4 || shape[0] < 0 || (shape[1] != 1 && shape[1] != 3) || shape[2] <= 0 || shape[3] <= 0)
    throw std::invalid_argument("image grid: expected images [N, C, H, W] with C = 1 or 3, got " +
                                core::shape_string(shape));
  if (static_cast<int64_t>(images.size()) != core::numel(shape))
    throw std::invalid_argument("image grid: " + std::to_string(images.size()) + " values for shape " +
                                core::shape_string(shape));
  const int64_t n = shape[0], channels = shape[1], height = shape[2], width = shape[3];
  if (rows <= 0 || cols <= 0 || rows * cols < n)
    throw std::invalid_argument("image grid: " + std::to_string(rows) + "x" + std::to_string(cols) + " cannot hold " +
                                std::to_string(n) + " images");
  if (options.border < 0) throw std::invalid_argument("image grid: negative border");
  GridResult result;
  Image& grid = result.image;
  grid.channels = channels;
  grid.width = cols * width + (cols + 1) * options.border;
  grid.height = rows * height + (rows + 1) * options.border;
  if (grid.width > kMaxSide || grid.height > kMaxSide)
    throw std::invalid_argument("image grid: " + std::to_string(grid.width) + "x" + std::to_string(grid.height) +
                                " is larger than a PNG we write");
  grid.pixels.assign(static_cast<size_t>(grid.width * grid.height * channels), options.border_value);
  const bool signed_range = options.range == PixelRange::kMinusOneToOne;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t top = options.border + (i / cols) * (height + options.border);
    const int64_t left = options.border + (i % cols) * (width + options.border);
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t y = 0; y < height; ++y)
        for (int64_t x = 0; x < width; ++x) {
          float value = images[static_cast<size_t>(((i * channels + c) * height + y) * width + x)];
          if (!std::isfinite(value)) {
            ++result.non_finite_values;
            value = signed_range ? -1.0f : 0.0f;
          }
          const float unit = signed_range ? 0.5f * (value + 1.0f) : value;
          grid.pixels[static_cast<size_t>(((top + y) * grid.width + left + x) * channels + c)] = to_byte(unit);
        }
  }
  return result;
}

int64_t write_image_grid(const fs::path& path, std::span<const float> images, const core::Shape& shape, int64_t rows,
                         int64_t cols, const GridOptions& options) {
  GridResult grid = image_grid(images, shape, rows, cols, options);
  write_png(path, grid.image);
  return grid.non_finite_values;
}

int64_t write_image_grid(const fs::path& path, const core::Tensor<float>& images, int64_t rows, int64_t cols,
                         const GridOptions& options) {
  return write_image_grid(path, std::span<const float>(images.data), images.shape, rows, cols, options);
}

}  // namespace starflow::data
