// PNG decode/encode and the grid writer. Inputs in every PNG layout are assembled chunk by chunk here
// (zlib for IDAT, CRC per chunk), independently of the encoder under test.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/io/files.h"
#include "data/io/png_io.h"
#include "data_io_test_support.h"

using namespace starflow;
using namespace starflow::data;
using namespace starflow::data::testing_support;

namespace {

enum PngColorType : uint8_t { kGray = 0, kRgb = 2, kPalette = 3, kGrayAlpha = 4, kRgba = 6 };

void put_u32(std::vector<uint8_t>& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(value >> shift));
}

void add_chunk(std::vector<uint8_t>& png, const char* type, const std::vector<uint8_t>& data) {
  put_u32(png, static_cast<uint32_t>(data.size()));
  const size_t type_at = png.size();
  png.insert(png.end(), type, type + 4);
  png.insert(png.end(), data.begin(), data.end());
  put_u32(png, static_cast<uint32_t>(crc32(0, png.data() + type_at, static_cast<uInt>(4 + data.size()))));
}

struct Chunk {
  const char* type;
  std::vector<uint8_t> data;
};

// A PNG from unfiltered rows of packed samples (row_bytes each); `extra` chunks go before IDAT.
std::vector<uint8_t> make_png(uint32_t width, uint32_t height, uint8_t bit_depth, PngColorType color,
                              const std::vector<uint8_t>& rows, size_t row_bytes,
                              const std::vector<Chunk>& extra = {}) {
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> header;
  put_u32(header, width);
  put_u32(header, height);
  header.insert(header.end(), {bit_depth, static_cast<uint8_t>(color), 0, 0, 0});
  add_chunk(png, "IHDR", header);
  for (const Chunk& chunk : extra) add_chunk(png, chunk.type, chunk.data);
  std::vector<uint8_t> filtered;
  for (uint32_t y = 0; y < height; ++y) {
    filtered.push_back(0);  // filter type None
    filtered.insert(filtered.end(), rows.begin() + y * row_bytes, rows.begin() + (y + 1) * row_bytes);
  }
  uLongf size = compressBound(static_cast<uLong>(filtered.size()));
  std::vector<uint8_t> compressed(size);
  EXPECT_EQ(compress2(compressed.data(), &size, filtered.data(), static_cast<uLong>(filtered.size()), 9), Z_OK);
  compressed.resize(size);
  add_chunk(png, "IDAT", compressed);
  add_chunk(png, "IEND", {});
  return png;
}

Image random_image(int64_t width, int64_t height, int64_t channels, uint32_t seed) {
  Image image{width, height, channels, std::vector<uint8_t>(static_cast<size_t>(width * height * channels))};
  for (uint8_t& p : image.pixels) {
    seed = seed * 1664525u + 1013904223u;
    p = static_cast<uint8_t>(seed >> 24);
  }
  return image;
}

uint8_t luma(int r, int g, int b) { return static_cast<uint8_t>(std::lround(0.299 * r + 0.587 * g + 0.114 * b)); }

const fs::path kName = "fixture.png";

TEST(PngRoundTrip, Gray) {
  const Image image = random_image(13, 7, 1, 1);
  const std::vector<uint8_t> bytes = encode_png(image);
  const Image back = decode_png(bytes, ColorMode::kGray, kName);
  EXPECT_EQ(back.width, 13);
  EXPECT_EQ(back.height, 7);
  EXPECT_EQ(back.channels, 1);
  EXPECT_EQ(back.pixels, image.pixels);
  const Image rgb = decode_png(bytes, ColorMode::kRgb, kName);  // gray → RGB replicates
  for (size_t i = 0; i < image.pixels.size(); ++i)
    for (int c = 0; c < 3; ++c) ASSERT_EQ(rgb.pixels[i * 3 + c], image.pixels[i]);
  const core::Tensor<float> planar = decode_png_float(bytes, ColorMode::kGray, kName);
  EXPECT_EQ(planar.shape, (core::Shape{1, 7, 13}));
  EXPECT_FLOAT_EQ(planar.data[5], image.pixels[5] / 255.0f);
}

TEST(PngRoundTrip, Rgb) {
  const Image image = random_image(9, 11, 3, 2);
  const std::vector<uint8_t> bytes = encode_png(image);
  EXPECT_EQ(decode_png(bytes, ColorMode::kRgb, kName).pixels, image.pixels);
  const Image gray = decode_png(bytes, ColorMode::kGray, kName);
  for (size_t i = 0; i < gray.pixels.size(); ++i)
    ASSERT_NEAR(gray.pixels[i], luma(image.pixels[3 * i], image.pixels[3 * i + 1], image.pixels[3 * i + 2]), 1);
  // Planar float: channel c of pixel (y, x) at (c·H + y)·W + x.
  const core::Tensor<float> planar = decode_png_float(bytes, ColorMode::kRgb, kName);
  EXPECT_EQ(planar.shape, (core::Shape{3, 11, 9}));
  const int64_t y = 4, x = 6, c = 2;
  EXPECT_FLOAT_EQ(planar.data[(c * 11 + y) * 9 + x], image.pixels[(y * 9 + x) * 3 + c] / 255.0f);
}

class PngFileTest : public TempDirTest {};

TEST_F(PngFileTest, WritePngThenReadPng) {
  const Image image = random_image(5, 4, 3, 3);
  write_png(file("out.png"), image);
  EXPECT_EQ(read_png(file("out.png"), ColorMode::kRgb).pixels, image.pixels);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1) << "temporary file left";
}

TEST(PngDecode, RgbaIsCompositedOnWhite) {
  // opaque red, transparent red, half-transparent black, opaque blue
  const std::vector<uint8_t> rows = {255, 0, 0, 255, 255, 0, 0, 0, 0, 0, 0, 128, 0, 0, 255, 255};
  const std::vector<uint8_t> png = make_png(2, 2, 8, kRgba, rows, 8);
  const Image rgb = decode_png(png, ColorMode::kRgb, kName);
  const std::vector<uint8_t> expected = {255, 0, 0, 255, 255, 255, 127, 127, 127, 0, 0, 255};
  EXPECT_EQ(rgb.pixels, expected);
  const core::Tensor<float> planar = decode_png_float(png, ColorMode::kRgb, kName);
  EXPECT_FLOAT_EQ(planar.data[2], 1.0f - 128.0f / 255.0f);  // channel 0 of pixel (1, 0)
  const Image gray = decode_png(png, ColorMode::kGray, kName);
  EXPECT_EQ(gray.pixels, (std::vector<uint8_t>{luma(255, 0, 0), 255, 127, luma(0, 0, 255)}));
}

TEST(PngDecode, GrayAlpha) {
  const std::vector<uint8_t> rows = {10, 255, 10, 0, 0, 51};  // opaque 10, transparent, black at alpha 0.2
  const Image gray = decode_png(make_png(3, 1, 8, kGrayAlpha, rows, 6), ColorMode::kGray, kName);
  EXPECT_EQ(gray.pixels, (std::vector<uint8_t>{10, 255, 204}));
}

TEST(PngDecode, PaletteWithTransparency) {
  // 2-bit palette indices 0, 1, 2, 1 in one byte; entry 2 is fully transparent (tRNS).
  const std::vector<Chunk> extra = {{"PLTE", {255, 0, 0, 0, 128, 0, 0, 0, 255}}, {"tRNS", {255, 255, 0}}};
  const std::vector<uint8_t> png = make_png(4, 1, 2, kPalette, {0b00011001}, 1, extra);
  const Image rgb = decode_png(png, ColorMode::kRgb, kName);
  EXPECT_EQ(rgb.pixels, (std::vector<uint8_t>{255, 0, 0, 0, 128, 0, 255, 255, 255, 0, 128, 0}));
  // Without tRNS the third colour shows.
  const Image opaque = decode_png(make_png(4, 1, 2, kPalette, {0b00011001}, 1, {extra[0]}), ColorMode::kRgb, kName);
  EXPECT_EQ(opaque.pixels[6], 0);
  EXPECT_EQ(opaque.pixels[8], 255);
}

TEST(PngDecode, SixteenBitKeepsPrecisionInFloat) {
  const std::vector<uint8_t> rows = {0x00, 0x00, 0xFF, 0xFF, 0x12, 0x34, 0x80, 0x80};
  const std::vector<uint8_t> png = make_png(4, 1, 16, kGray, rows, 8);
  const core::Tensor<float> planar = decode_png_float(png, ColorMode::kGray, kName);
  EXPECT_FLOAT_EQ(planar.data[0], 0.0f);
  EXPECT_FLOAT_EQ(planar.data[1], 1.0f);
  EXPECT_FLOAT_EQ(planar.data[2], 0x1234 / 65535.0f);
  const Image bytes = decode_png(png, ColorMode::kGray, kName);
  EXPECT_EQ(bytes.pixels, (std::vector<uint8_t>{0, 255, 18, 128}));
  // 16-bit RGBA, half-transparent white-on-white stays white, opaque black stays black.
  const std::vector<uint8_t> rgba = {0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x80, 0x00};
  const Image rgb = decode_png(make_png(2, 1, 16, kRgba, rgba, 16), ColorMode::kRgb, kName);
  EXPECT_EQ(rgb.pixels, (std::vector<uint8_t>{0, 0, 0, 255, 255, 255}));
}

TEST(PngDecode, OneBitGray) {
  const Image gray = decode_png(make_png(8, 1, 1, kGray, {0b10100000}, 1), ColorMode::kGray, kName);
  EXPECT_EQ(gray.pixels, (std::vector<uint8_t>{255, 0, 255, 0, 0, 0, 0, 0}));
}

TEST(PngErrors, CorruptAndTruncatedFilesNameTheFile) {
  const std::vector<uint8_t> good = encode_png(random_image(32, 32, 3, 4));
  std::vector<uint8_t> bad = good;
  bad[bad.size() / 2] ^= 0xFF;  // inside IDAT: the chunk CRC no longer matches
  expect_file_error([&] { decode_png(bad, ColorMode::kRgb, "emoji/bad.png"); }, "emoji/bad.png", "corrupt PNG");
  std::vector<uint8_t> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() / 2));
  expect_file_error([&] { decode_png(cut, ColorMode::kRgb, "cut.png"); }, "cut.png", "truncated");
  std::vector<uint8_t> no_end(good.begin(), good.end() - 12);  // drops IEND
  expect_file_error([&] { decode_png(no_end, ColorMode::kRgb, "tail.png"); }, "tail.png", "truncated");
  const std::string text = "GIF89a, not a PNG at all";
  expect_file_error([&] { decode_png(std::vector<uint8_t>(text.begin(), text.end()), ColorMode::kRgb, "x.gif"); },
                    "x.gif", "not a PNG file");
  expect_file_error([&] { decode_png({}, ColorMode::kRgb, "empty.png"); }, "empty.png", "empty file");
  expect_file_error([&] { read_png("/nonexistent/starflow.png", ColorMode::kRgb); }, "/nonexistent/starflow.png",
                    "No such file");
}

TEST(PngErrors, HeaderClaimingMorePixelsThanTheFileHolds) {
  std::vector<uint8_t> png = make_png(1, 1, 8, kGray, {0}, 1);
  // Rewrite IHDR to 16000×16000 RGBA-sized gray, with a valid CRC: corrupt in meaning, not in checksum.
  std::vector<uint8_t> header;
  put_u32(header, 16000);
  put_u32(header, 16000);
  header.insert(header.end(), {8, kGray, 0, 0, 0});
  std::vector<uint8_t> patched(png.begin(), png.begin() + 8);
  add_chunk(patched, "IHDR", header);
  patched.insert(patched.end(), png.begin() + 8 + 25, png.end());
  expect_file_error([&] { decode_png(patched, ColorMode::kGray, "huge.png"); }, "huge.png", "more than its");
}

TEST(PngEncode, RejectsBadImages) {
  EXPECT_THROW(encode_png(Image{2, 2, 4, std::vector<uint8_t>(16)}), std::invalid_argument);
  EXPECT_THROW(encode_png(Image{2, 2, 3, std::vector<uint8_t>(11)}), std::invalid_argument);
  EXPECT_THROW(encode_png(Image{0, 2, 1, {}}), std::invalid_argument);
}

TEST(PngGrid, TilesWithBordersAndRanges) {
  // 5 gray 4×6 images in a 2×3 grid: image i is filled with value -1 + 0.5·i (clamped at 1).
  const int64_t n = 5, h = 4, w = 6;
  std::vector<float> images(static_cast<size_t>(n * h * w));
  for (int64_t i = 0; i < n; ++i)
    std::fill(images.begin() + i * h * w, images.begin() + (i + 1) * h * w, -1.0f + 0.5f * static_cast<float>(i));
  const GridResult grid = image_grid(images, {n, 1, h, w}, 2, 3);
  EXPECT_EQ(grid.image.width, 3 * w + 4 * 2);
  EXPECT_EQ(grid.image.height, 2 * h + 3 * 2);
  EXPECT_EQ(grid.non_finite_values, 0);
  const auto at = [&](int64_t y, int64_t x) {
    return grid.image.pixels[static_cast<size_t>(y * grid.image.width + x)];
  };
  EXPECT_EQ(at(0, 0), 128);                        // outer border
  EXPECT_EQ(at(2, 2), 0);                          // image 0: -1 → 0
  EXPECT_EQ(at(2, 2 + w + 2), 64);                 // image 1: -0.5 → 63.75 → 64
  EXPECT_EQ(at(2 + h + 2, 2 + w + 2), 255);        // image 4: 1 → 255
  EXPECT_EQ(at(2 + h + 2, 2 + 2 * (w + 2)), 128);  // empty sixth slot keeps the border value
  EXPECT_EQ(at(2, 2 + w), 128);                    // border between tiles
}

TEST_F(PngFileTest, GridRgbZeroToOneWritesAPng) {
  const int64_t n = 3, h = 5, w = 7;
  core::Tensor<float> images(core::Shape{n, 3, h, w}, 0.25f);
  images.data[0] = std::numeric_limits<float>::quiet_NaN();
  images.data[1] = 7.0f;  // clamped
  const fs::path path = file("grid.png");
  GridOptions options;
  options.range = PixelRange::kZeroToOne;
  options.border = 1;
  options.border_value = 255;
  EXPECT_EQ(write_image_grid(path, images, 1, 3, options), 1);
  const Image back = read_png(path, ColorMode::kRgb);
  EXPECT_EQ(back.width, 3 * w + 4);
  EXPECT_EQ(back.height, h + 2);
  const auto at = [&](int64_t y, int64_t x, int64_t c) {
    return back.pixels[static_cast<size_t>((y * back.width + x) * 3 + c)];
  };
  EXPECT_EQ(at(1, 1, 0), 0);    // NaN drawn black
  EXPECT_EQ(at(1, 2, 0), 255);  // 7 clamped to 1
  EXPECT_EQ(at(1, 3, 1), 64);   // 0.25
  EXPECT_EQ(at(0, 0, 2), 255);  // border
}

TEST(PngGrid, RejectsBadArguments) {
  std::vector<float> images(2 * 3 * 4 * 4);
  EXPECT_THROW(image_grid(images, {2, 3, 4, 4}, 1, 1), std::invalid_argument);  // too small a grid
  EXPECT_THROW(image_grid(images, {2, 2, 6, 4}, 2, 2), std::invalid_argument);  // 2 channels
  EXPECT_THROW(image_grid(images, {2, 3, 4, 5}, 2, 2), std::invalid_argument);  // size mismatch
}

}  // namespace
