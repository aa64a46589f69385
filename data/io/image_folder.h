// A folder of PNG images listed by a captions file or a labels file: the input of `starflow preprocess`
// for captioned sets (the emoji) and labelled sets. The list is parsed strictly (a malformed line is one
// error naming file:line); the images are loaded leniently: a missing, corrupt or wrong-sized image is
// recorded by name in a SkippedImages collector and the caller carries on, so one bad file never stops
// a preprocessing run and the job's summary can say how many were skipped.
//
// List formats, one entry per line, UTF-8, fields separated by exactly one TAB, blank lines ignored:
//   captions:  <file>\t<caption>       the caption is free text (not empty)
//   labels:    <file>\t<label>         the label is a class id (0, 1, 2, ...) or a class name
// <file> is relative to the image folder (an absolute path is used as is). The first line's label
// decides how labels are read: if it is a non-negative integer, every label must be one (ids are used as
// written; n_classes = largest id + 1); otherwise every label is a class name, and names get ids 0, 1, 2,
// ... in order of first appearance in the file (so "cat, dog, cat, bird" gives cat 0, dog 1, bird 2).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/io/png_io.h"

namespace starflow::data {

enum class ImageListKind { kCaptions, kLabels };

struct ImageFolderEntry {
  std::string file;     // as written in the list
  std::string caption;  // captions list: the caption; labels list with names: the class name
  int64_t label = -1;   // labels list: the class id; captions list: -1
  int64_t line = 0;     // 1-based line in the list file, for messages
};

// What loaded images must look like. kKeep: as stored (single-image loads only); kRequire: exactly
// width×height, anything else is skipped; kResize: center crop + antialiased resize to width×height.
enum class SizePolicy { kKeep, kRequire, kResize };

struct ImageLoadOptions {
  ColorMode color = ColorMode::kRgb;
  SizePolicy size_policy = SizePolicy::kKeep;
  int64_t width = 0, height = 0;
};

struct SkippedImage {
  std::string file;    // the list's name for it
  std::string reason;  // one line: "missing file", "corrupt PNG: ...", "is 64x64, expected 32x32"
};

// Collects the images a load skipped; optionally tells a callback as each one happens (to print it).
// Not thread-safe: give each loading thread its own collector.
class SkippedImages {
 public:
  using Callback = std::function<void(const SkippedImage&)>;
  explicit SkippedImages(Callback on_skip = {}) : on_skip_(std::move(on_skip)) {}
  void add(std::string file, std::string reason);
  int64_t count() const { return static_cast<int64_t>(items_.size()); }
  const std::vector<SkippedImage>& items() const { return items_; }

 private:
  Callback on_skip_;
  std::vector<SkippedImage> items_;
};

// Images that loaded, stacked, with the list entries they came from.
struct LoadedImages {
  core::Tensor<float> images;    // [N, C, H, W] in [0, 1]
  std::vector<int64_t> entries;  // index into ImageFolder::entries() of each image
};

class ImageFolder {
 public:
  // Parse the list (throws FileError "<list>:<line>: ..." for a malformed line, FileError for an
  // unreadable or empty list). Images are not touched until loaded.
  static ImageFolder with_captions(std::filesystem::path folder, const std::filesystem::path& captions_file);
  static ImageFolder with_labels(std::filesystem::path folder, const std::filesystem::path& labels_file);

  ImageListKind kind() const { return kind_; }
  const std::filesystem::path& folder() const { return folder_; }
  const std::filesystem::path& list_file() const { return list_file_; }
  const std::vector<ImageFolderEntry>& entries() const { return entries_; }
  int64_t size() const { return static_cast<int64_t>(entries_.size()); }
  // Labels lists: names by id when the labels were names, empty when they were ids. Captions: empty.
  const std::vector<std::string>& class_names() const { return class_names_; }
  // Labels lists: the number of classes (see the header comment). Captions lists: 0.
  int64_t n_classes() const { return n_classes_; }

  std::filesystem::path path_of(int64_t index) const;

  // Entry `index` as [C, H, W] in [0, 1]; nullopt after recording in `skipped` why it could not be used.
  std::optional<core::Tensor<float>> load(int64_t index, const ImageLoadOptions& options, SkippedImages& skipped) const;
  // Entries [begin, end) that load; needs kRequire or kResize (one size for the stack).
  LoadedImages load_range(int64_t begin, int64_t end, const ImageLoadOptions& options, SkippedImages& skipped) const;

 private:
  ImageFolder(std::filesystem::path folder, std::filesystem::path list_file, ImageListKind kind);
  void parse_list();

  std::filesystem::path folder_, list_file_;
  ImageListKind kind_;
  std::vector<ImageFolderEntry> entries_;
  std::vector<std::string> class_names_;
  int64_t n_classes_ = 0;
};

}  // namespace starflow::data
