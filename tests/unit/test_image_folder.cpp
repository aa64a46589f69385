// Image folders with captions/labels lists, the resizer, and (when tools/fetch-emoji.sh has run) the
// real emoji set: good entries load, bad images are skipped by name and counted, bad lines are file:line
// errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "data/io/emoji_dataset.h"
#include "core/io/files.h"
#include "data/io/image_folder.h"
#include "data/io/image_resize.h"
#include "data/io/png_io.h"
#include "data_io_test_support.h"

using namespace starflow;
using namespace starflow::data;
using namespace starflow::data::testing_support;

namespace {

Image solid(int64_t width, int64_t height, uint8_t r, uint8_t g, uint8_t b) {
  Image image{width, height, 3, {}};
  for (int64_t i = 0; i < width * height; ++i) image.pixels.insert(image.pixels.end(), {r, g, b});
  return image;
}

class ImageFolderTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    fs::create_directories(dir_ / "images" / "sub");
    write_png(dir_ / "images" / "red.png", solid(8, 8, 255, 0, 0));
    write_png(dir_ / "images" / "sub" / "green.png", solid(8, 8, 0, 255, 0));
    write_png(dir_ / "images" / "big.png", solid(16, 16, 0, 0, 255));
    write_text(dir_ / "images" / "corrupt.png", "\x89PNG\r\n\x1a\n this is no PNG");
  }
  fs::path images() const { return dir_ / "images"; }
};

TEST_F(ImageFolderTest, CaptionsListLoadsGoodImagesAndReportsBadOnesByName) {
  write_text(file("captions.tsv"),
             "red.png\ta red square\n"
             "\n"
             "sub/green.png\t  a green square \r\n"
             "corrupt.png\tbroken\n"
             "missing.png\tnowhere\n"
             "big.png\ta blue square, too big\n");
  const ImageFolder folder = ImageFolder::with_captions(images(), file("captions.tsv"));
  EXPECT_EQ(folder.kind(), ImageListKind::kCaptions);
  ASSERT_EQ(folder.size(), 5);
  EXPECT_EQ(folder.entries()[1].file, "sub/green.png");
  EXPECT_EQ(folder.entries()[1].caption, "a green square");
  EXPECT_EQ(folder.entries()[1].line, 3);
  EXPECT_EQ(folder.entries()[1].label, -1);
  EXPECT_EQ(folder.path_of(1), images() / "sub" / "green.png");

  std::vector<std::string> reported;
  SkippedImages skipped([&](const SkippedImage& image) { reported.push_back(image.file); });
  ImageLoadOptions options;
  options.size_policy = SizePolicy::kRequire;
  options.width = options.height = 8;
  const LoadedImages loaded = folder.load_range(0, folder.size(), options, skipped);
  EXPECT_EQ(loaded.images.shape, (core::Shape{2, 3, 8, 8}));
  EXPECT_EQ(loaded.entries, (std::vector<int64_t>{0, 1}));
  EXPECT_FLOAT_EQ(loaded.images.data[0], 1.0f);                // red, channel 0
  EXPECT_FLOAT_EQ(loaded.images.data[3 * 64 + 64 + 5], 1.0f);  // green, channel 1
  ASSERT_EQ(skipped.count(), 3);
  EXPECT_EQ(reported, (std::vector<std::string>{"corrupt.png", "missing.png", "big.png"}));
  EXPECT_NE(skipped.items()[0].reason.find("corrupt PNG"), std::string::npos) << skipped.items()[0].reason;
  EXPECT_EQ(skipped.items()[1].reason, "missing file");
  EXPECT_EQ(skipped.items()[2].reason, "is 16x16, expected 8x8");
  for (const SkippedImage& image : skipped.items()) EXPECT_EQ(image.reason.find('\n'), std::string::npos);
}

TEST_F(ImageFolderTest, ResizePolicyMakesEveryGoodImageFit) {
  write_text(file("captions.tsv"), "big.png\tblue\nred.png\tred\ncorrupt.png\tbroken\n");
  const ImageFolder folder = ImageFolder::with_captions(images(), file("captions.tsv"));
  SkippedImages skipped;
  ImageLoadOptions options;
  options.color = ColorMode::kGray;
  options.size_policy = SizePolicy::kResize;
  options.width = options.height = 4;
  const LoadedImages loaded = folder.load_range(0, 3, options, skipped);
  EXPECT_EQ(loaded.images.shape, (core::Shape{2, 1, 4, 4}));
  EXPECT_NEAR(loaded.images.data[0], 0.114f, 1e-5f);        // blue's luma
  EXPECT_NEAR(loaded.images.data[16 + 15], 0.299f, 1e-5f);  // red's luma
  EXPECT_EQ(skipped.count(), 1);
  // kKeep loads one image as stored.
  const auto big = folder.load(0, ImageLoadOptions{}, skipped);
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(big->shape, (core::Shape{3, 16, 16}));
  EXPECT_THROW(folder.load_range(0, 1, ImageLoadOptions{}, skipped), std::invalid_argument);
}

TEST_F(ImageFolderTest, LabelsByName) {
  write_text(file("labels.tsv"), "red.png\tcat\nsub/green.png\tdog\nbig.png\tcat\ncorrupt.png\tbird\n");
  const ImageFolder folder = ImageFolder::with_labels(images(), file("labels.tsv"));
  EXPECT_EQ(folder.class_names(), (std::vector<std::string>{"cat", "dog", "bird"}));
  EXPECT_EQ(folder.n_classes(), 3);
  std::vector<int64_t> labels;
  for (const ImageFolderEntry& entry : folder.entries()) labels.push_back(entry.label);
  EXPECT_EQ(labels, (std::vector<int64_t>{0, 1, 0, 2}));
  EXPECT_EQ(folder.entries()[3].caption, "bird");
}

TEST_F(ImageFolderTest, LabelsById) {
  write_text(file("labels.tsv"), "red.png\t3\nsub/green.png\t0\n");
  const ImageFolder folder = ImageFolder::with_labels(images(), file("labels.tsv"));
  EXPECT_TRUE(folder.class_names().empty());
  EXPECT_EQ(folder.n_classes(), 4);
  EXPECT_EQ(folder.entries()[0].label, 3);
  EXPECT_EQ(folder.entries()[1].label, 0);
}

class CaptionListTest : public TempDirTest {};

TEST_F(CaptionListTest, MalformedLinesAreFileLineErrors) {
  const std::string list = file("list.tsv").string();
  const auto captions = [&](const std::string& text) {
    write_text(file("list.tsv"), text);
    ImageFolder::with_captions(dir_, file("list.tsv"));
  };
  expect_file_error([&] { captions("a.png\tfine\nb.png fine too?\n"); }, list + ":2",
                    "expected '<file><TAB><caption>', found no TAB");
  expect_file_error([&] { captions("a.png\tone\ttwo\n"); }, list + ":1", "more than one TAB");
  expect_file_error([&] { captions("\n\n\ta caption without a file\n"); }, list + ":3", "empty file name");
  expect_file_error([&] { captions("a.png\t  \n"); }, list + ":1", "empty caption for a.png");
  expect_file_error([&] { captions("\n  \n"); }, list, "no entries");
  const auto labels = [&](const std::string& text) {
    write_text(file("list.tsv"), text);
    ImageFolder::with_labels(dir_, file("list.tsv"));
  };
  expect_file_error([&] { labels("a.png\t1\nb.png\tcat\n"); }, list + ":2",
                    "label 'cat' is not a non-negative integer (the first line's label made this a file of class ids)");
  expect_file_error([&] { labels("a.png\t0\nb.png\t-1\n"); }, list + ":2", "not a non-negative integer");
  expect_file_error([&] { labels("a.png\t99999999999\n"); }, list + ":1", "implausibly large");
  expect_file_error([&] { ImageFolder::with_captions(dir_, file("absent.tsv")); }, file("absent.tsv").string(),
                    "cannot open");
  expect_file_error([&] { ImageFolder::with_captions(dir_ / "absent", file("list.tsv")); }, (dir_ / "absent").string(),
                    "image folder not found");
}

TEST_F(CaptionListTest, ByteOrderMarkAndCrLfAreAccepted) {
  write_text(file("list.tsv"),
             "\xEF\xBB\xBF"
             "a.png\tfirst\r\nb.png\tsecond");
  const ImageFolder folder = ImageFolder::with_captions(dir_, file("list.tsv"));
  ASSERT_EQ(folder.size(), 2);
  EXPECT_EQ(folder.entries()[0].file, "a.png");
  EXPECT_EQ(folder.entries()[0].caption, "first");
  EXPECT_EQ(folder.entries()[1].caption, "second");
}

// ---- resizing ----

core::Tensor<float> ramp(int64_t channels, int64_t height, int64_t width) {
  core::Tensor<float> image(core::Shape{channels, height, width});
  for (size_t i = 0; i < image.data.size(); ++i) image.data[i] = static_cast<float>(i);
  return image;
}

TEST(ImageResize, HalvingIsTheExactTwoByTwoMean) {
  const core::Tensor<float> image = ramp(2, 4, 4);
  const core::Tensor<float> small = resize_center_crop(image, 2, 2);
  ASSERT_EQ(small.shape, (core::Shape{2, 2, 2}));
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t y = 0; y < 2; ++y)
      for (int64_t x = 0; x < 2; ++x) {
        const auto at = [&](int64_t yy, int64_t xx) { return image.data[static_cast<size_t>((c * 4 + yy) * 4 + xx)]; };
        const float mean =
            0.25f * (at(2 * y, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x) + at(2 * y + 1, 2 * x + 1));
        EXPECT_FLOAT_EQ(small.data[static_cast<size_t>((c * 2 + y) * 2 + x)], mean);
      }
}

TEST(ImageResize, FractionalShrinkAveragesByCoverage) {
  core::Tensor<float> square(core::Shape{1, 3, 3});
  square.data = {0, 3, 6, 0, 3, 6, 0, 3, 6};  // every row 0, 3, 6
  const core::Tensor<float> small = resize_center_crop(square, 2, 2);
  // Output pixel 0 covers source [0, 1.5): (0·1 + 3·0.5) / 1.5 = 1.
  EXPECT_NEAR(small.data[0], 1.0f, 1e-6f);
  EXPECT_NEAR(small.data[1], 5.0f, 1e-6f);
}

TEST(ImageResize, CenterCropKeepsTheMiddle) {
  // 2 rows × 6 columns → 2×2: the middle 2×2 block, untouched.
  const core::Tensor<float> wide = ramp(1, 2, 6);
  const core::Tensor<float> crop = resize_center_crop(wide, 2, 2);
  EXPECT_EQ(crop.data, (std::vector<float>{2, 3, 8, 9}));
  // 6×2 tall → 1×1: the mean of the middle 2×2 block.
  const core::Tensor<float> tall = ramp(1, 6, 2);
  EXPECT_FLOAT_EQ(resize_center_crop(tall, 1, 1).data[0], (4 + 5 + 6 + 7) / 4.0f);
}

TEST(ImageResize, EnlargingIsBilinear) {
  core::Tensor<float> square(core::Shape{1, 2, 2});
  square.data = {0, 1, 0, 1};
  const core::Tensor<float> big = resize_center_crop(square, 4, 4);
  // Source centers at 0.5 and 1.5 of 2; output centers at 0.25, 0.75, 1.25, 1.75 (source units).
  EXPECT_EQ(std::vector<float>(big.data.begin(), big.data.begin() + 4), (std::vector<float>{0, 0.25f, 0.75f, 1}));
  const core::Tensor<float> same = resize_center_crop(square, 2, 2);
  EXPECT_EQ(same.data, square.data);
  EXPECT_THROW(resize_center_crop(square, 0, 2), std::invalid_argument);
}

// ---- the real emoji set, when tools/fetch-emoji.sh has fetched it ----

TEST(CaptionEmojiDataset, LoadsAndResizesTheFetchedSet) {
  const EmojiDatasetPaths paths = emoji_dataset_paths();
  if (!emoji_dataset_present(paths)) GTEST_SKIP() << "run tools/fetch-emoji.sh to fetch the emoji set";
  const ImageFolder folder = open_emoji_dataset();
  EXPECT_GT(folder.size(), 3700);
  const auto grinning = std::find_if(folder.entries().begin(), folder.entries().end(),
                                     [](const ImageFolderEntry& e) { return e.file == "1f600.png"; });
  ASSERT_NE(grinning, folder.entries().end());
  EXPECT_EQ(grinning->caption, "grinning face");
  SkippedImages skipped;
  ImageLoadOptions options;
  options.size_policy = SizePolicy::kRequire;
  options.width = options.height = kEmojiImageSide;
  const LoadedImages full = folder.load_range(0, 16, options, skipped);
  EXPECT_EQ(full.images.shape, (core::Shape{16, 3, 64, 64}));
  options.size_policy = SizePolicy::kResize;
  options.width = options.height = 32;
  const LoadedImages small = folder.load_range(0, 16, options, skipped);
  EXPECT_EQ(small.images.shape, (core::Shape{16, 3, 32, 32}));
  EXPECT_EQ(skipped.count(), 0);
  EXPECT_FLOAT_EQ(small.images.data[0], 1.0f);  // corners are transparent → white
}

}  // namespace
