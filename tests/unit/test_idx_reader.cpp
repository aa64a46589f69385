// IDX reader: synthetic round trips (gzip and plain), the real Fashion-MNIST test set, and one-line
// errors for wrong, truncated and corrupt files.
#include <gtest/gtest.h>
#include <zlib.h>

#include <numeric>

#include "core/io/files.h"
#include "data/io/idx_reader.h"
#include "data_io_test_support.h"

using namespace starflow;
using namespace starflow::data;
using namespace starflow::data::testing_support;

namespace {

class IdxReaderTest : public TempDirTest {
 protected:
  // 3 images of 4×5 with distinct bytes, and their labels.
  core::Tensor<uint8_t> sample_images() const {
    core::Tensor<uint8_t> images(core::Shape{3, 4, 5});
    for (size_t i = 0; i < images.data.size(); ++i) images.data[i] = static_cast<uint8_t>(i * 7 + 3);
    return images;
  }
  std::vector<uint8_t> sample_labels() const { return {2, 0, 7}; }
};

TEST_F(IdxReaderTest, RoundTripGzipAndPlain) {
  for (const char* suffix : {".gz", ""}) {
    const fs::path images_path = file(std::string("images-idx3-ubyte") + suffix);
    const fs::path labels_path = file(std::string("labels-idx1-ubyte") + suffix);
    write_idx_images(images_path, sample_images());
    write_idx_labels(labels_path, sample_labels());
    const std::vector<uint8_t> raw = read_bytes(images_path);
    ASSERT_GE(raw.size(), 2u);
    EXPECT_EQ(raw[0] == 0x1f && raw[1] == 0x8b, std::string(suffix) == ".gz") << "gzip magic";
    const LabeledImages set = read_idx_dataset(images_path, labels_path);
    EXPECT_EQ(set.images.shape, (core::Shape{3, 4, 5}));
    EXPECT_EQ(set.images.data, sample_images().data);
    EXPECT_EQ(set.labels, sample_labels());
    EXPECT_EQ(set.n_classes, 8);
  }
}

TEST_F(IdxReaderTest, PlainFileHasTheStandardHeader) {
  write_idx_labels(file("labels"), std::vector<uint8_t>{1, 2});
  const std::vector<uint8_t> expected = {0, 0, 8, 1, 0, 0, 0, 2, 1, 2};
  EXPECT_EQ(read_bytes(file("labels")), expected);
}

TEST_F(IdxReaderTest, EmptySetIsValid) {
  write_idx_labels(file("labels.gz"), std::vector<uint8_t>{});
  EXPECT_TRUE(read_idx_labels(file("labels.gz")).empty());
}

TEST(IdxFashionMnist, ReadsTheRealTestSet) {
  const fs::path dir(kFashionMnistDir);
  if (!fs::exists(dir / "t10k-labels-idx1-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const LabeledImages set = read_fashion_mnist(FashionMnistSplit::kTest);
  EXPECT_EQ(set.images.shape, (core::Shape{10000, 28, 28}));
  ASSERT_EQ(set.labels.size(), 10000u);
  EXPECT_EQ(set.n_classes, 10);
  EXPECT_EQ(set.labels[0], 9);  // the first test image is an ankle boot
  EXPECT_EQ(set.labels[1], 2);
  EXPECT_EQ(fashion_mnist_class_names()[set.labels[0]], "Ankle boot");
  std::vector<int> per_class(10, 0);
  for (uint8_t label : set.labels) ++per_class[label];
  for (int count : per_class) EXPECT_EQ(count, 1000);  // the test set is balanced
  const double mean = std::accumulate(set.images.data.begin(), set.images.data.end(), 0.0) / set.images.size();
  EXPECT_GT(mean, 60.0);  // ink, not an all-zero buffer
  EXPECT_LT(mean, 90.0);
}

TEST_F(IdxReaderTest, MissingFileNamesIt) {
  expect_file_error([&] { read_idx_images(file("absent.gz")); }, file("absent.gz").string(), "cannot open");
  expect_file_error([&] { read_fashion_mnist(FashionMnistSplit::kTrain, dir_); },
                    file("train-images-idx3-ubyte").string(), "not found");
}

TEST_F(IdxReaderTest, WrongKindOfFileNamesIt) {
  write_idx_labels(file("labels.gz"), sample_labels());
  write_idx_images(file("images.gz"), sample_images());
  expect_file_error([&] { read_idx_images(file("labels.gz")); }, file("labels.gz").string(),
                    "has 1 dimensions; an IDX images file has 3");
  expect_file_error([&] { read_idx_labels(file("images.gz")); }, file("images.gz").string(),
                    "has 3 dimensions; an IDX labels file has 1");
  write_text(file("text.idx"), "hello, not an idx file");
  expect_file_error([&] { read_idx_images(file("text.idx")); }, file("text.idx").string(), "not an IDX file");
  write_bytes(file("int.idx"), {0, 0, 0x0C, 1, 0, 0, 0, 0});
  expect_file_error([&] { read_idx_labels(file("int.idx")); }, file("int.idx").string(), "element type 0x0C");
  write_bytes(file("zero-side.idx"), {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1});
  expect_file_error([&] { read_idx_images(file("zero-side.idx")); }, file("zero-side.idx").string(),
                    "implausible image side 0");
}

TEST_F(IdxReaderTest, CountMismatchNamesTheLabelsFile) {
  write_idx_images(file("images.gz"), sample_images());
  write_idx_labels(file("labels.gz"), std::vector<uint8_t>{1, 2});
  expect_file_error([&] { read_idx_dataset(file("images.gz"), file("labels.gz")); }, file("labels.gz").string(),
                    "has 2 labels but");
}

TEST_F(IdxReaderTest, TruncatedFilesNameTheFile) {
  // Plain: cut inside the pixels.
  write_idx_images(file("plain"), sample_images());
  std::vector<uint8_t> bytes = read_bytes(file("plain"));
  bytes.resize(bytes.size() - 7);
  write_bytes(file("plain"), bytes);
  expect_file_error([&] { read_idx_images(file("plain")); }, file("plain").string(),
                    "truncated: 3 images of 4x5 need 60 bytes, the file has 53");
  // Plain: cut inside the header.
  bytes.resize(10);
  write_bytes(file("plain"), bytes);
  expect_file_error([&] { read_idx_images(file("plain")); }, file("plain").string(), "truncated IDX header");
  // Gzip: the compressed stream itself cut short.
  core::Tensor<uint8_t> big(core::Shape{50, 28, 28});
  for (size_t i = 0; i < big.data.size(); ++i) big.data[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  write_idx_images(file("cut.gz"), big);
  bytes = read_bytes(file("cut.gz"));
  bytes.resize(bytes.size() / 2);
  write_bytes(file("cut.gz"), bytes);
  expect_file_error([&] { read_idx_images(file("cut.gz")); }, file("cut.gz").string(), "truncated");
}

TEST_F(IdxReaderTest, TrailingBytesAreAnError) {
  write_idx_labels(file("labels"), sample_labels());
  std::vector<uint8_t> bytes = read_bytes(file("labels"));
  bytes.push_back(0);
  write_bytes(file("labels"), bytes);
  expect_file_error([&] { read_idx_labels(file("labels")); }, file("labels").string(), "unexpected data after");
}

TEST_F(IdxReaderTest, CorruptGzipNamesTheFile) {
  core::Tensor<uint8_t> big(core::Shape{20, 28, 28});
  for (size_t i = 0; i < big.data.size(); ++i) big.data[i] = static_cast<uint8_t>((i * 2654435761u) >> 11);
  write_idx_images(file("bad.gz"), big);
  std::vector<uint8_t> bytes = read_bytes(file("bad.gz"));
  for (size_t i = bytes.size() / 3; i < bytes.size() / 3 + 16; ++i) bytes[i] ^= 0x5a;
  write_bytes(file("bad.gz"), bytes);
  // Either inflate rejects the stream or the gzip CRC check catches it: both say "corrupt gzip data".
  expect_file_error([&] { read_idx_images(file("bad.gz")); }, file("bad.gz").string(), "corrupt gzip data");
}

TEST(IdxWriter, RejectsBadShapes) {
  core::Tensor<uint8_t> flat(core::Shape{4, 4});
  EXPECT_THROW(write_idx_images("unused.idx", flat), std::invalid_argument);
}

}  // namespace
