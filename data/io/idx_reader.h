// MNIST-style IDX files (Fashion-MNIST as Debian's dataset-fashion-mnist installs it): unsigned-byte
// images N×rows×cols and labels N, gzip-compressed or plain. Every header field is checked before it is
// used, so a wrong, damaged or truncated file fails with one line naming it.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace starflow::data {

// Images [N, rows, cols], pixel 0 = background (black), 255 = full ink, as stored.
core::Tensor<uint8_t> read_idx_images(const std::filesystem::path& path);
// Labels [N].
std::vector<uint8_t> read_idx_labels(const std::filesystem::path& path);

struct LabeledImages {
  core::Tensor<uint8_t> images;  // [N, rows, cols]
  std::vector<uint8_t> labels;   // [N]
  int64_t n_classes = 0;         // largest label + 1 (the dataset's own count for Fashion-MNIST)
};

// An images file and its labels file; their counts must match.
LabeledImages read_idx_dataset(const std::filesystem::path& images_path, const std::filesystem::path& labels_path);

// Fashion-MNIST: DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte, with or without .gz (the plain name
// wins when both exist). Labels are checked to lie in 0..9; n_classes is 10.
enum class FashionMnistSplit { kTrain, kTest };
inline constexpr std::string_view kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
LabeledImages read_fashion_mnist(FashionMnistSplit split,
                                 const std::filesystem::path& dir = std::filesystem::path(kFashionMnistDir));
// The ten class names, by label ("T-shirt/top", "Trouser", ...).
const std::array<std::string_view, 10>& fashion_mnist_class_names();

// Writers (tests and small synthetic sets): gzip-compressed when the name ends in ".gz", written through
// a temporary file and renamed.
void write_idx_images(const std::filesystem::path& path, const core::Tensor<uint8_t>& images);
void write_idx_labels(const std::filesystem::path& path, std::span<const uint8_t> labels);

}  // namespace starflow::data
