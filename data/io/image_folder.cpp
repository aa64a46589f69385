// Image folder + captions/labels list: strict list parsing, lenient per-image loading.
#include "data/io/image_folder.h"

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <unordered_map>

#include "core/io/files.h"
#include "data/io/image_resize.h"

namespace starflow::data {

using core::io::FileError;
using core::io::fail_file;
using core::io::fail_file_line;
using core::io::read_file_bytes;

namespace fs = std::filesystem;

namespace {

// Ids above this are a typo or a corrupt list, not a class count anyone trains on (the one-hot
// conditioning is n_classes + 1 wide).
constexpr int64_t kMaxClassId = 1'000'000;

std::string_view trim(std::string_view text) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; };
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

std::optional<int64_t> parse_class_id(std::string_view text) {
  int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 0 || text.front() == '+') return std::nullopt;
  return value;
}

std::string size_string(int64_t width, int64_t height) { return std::to_string(width) + "x" + std::to_string(height); }

}  // namespace

void SkippedImages::add(std::string file, std::string reason) {
  items_.push_back({std::move(file), std::move(reason)});
  if (on_skip_) on_skip_(items_.back());
}

ImageFolder::ImageFolder(fs::path folder, fs::path list_file, ImageListKind kind)
    : folder_(std::move(folder)), list_file_(std::move(list_file)), kind_(kind) {}

ImageFolder ImageFolder::with_captions(fs::path folder, const fs::path& captions_file) {
  ImageFolder result(std::move(folder), captions_file, ImageListKind::kCaptions);
  result.parse_list();
  return result;
}

ImageFolder ImageFolder::with_labels(fs::path folder, const fs::path& labels_file) {
  ImageFolder result(std::move(folder), labels_file, ImageListKind::kLabels);
  result.parse_list();
  return result;
}

void ImageFolder::parse_list() {
  std::error_code error;
  if (!fs::is_directory(folder_, error)) fail_file(folder_, "image folder not found (or not a directory)");
  const std::vector<uint8_t> bytes = read_file_bytes(list_file_);
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // editors on some systems add a UTF-8 BOM
  const bool captions = kind_ == ImageListKind::kCaptions;
  const char* second = captions ? "caption" : "label";
  std::optional<bool> numeric_labels;  // decided by the first entry
  std::unordered_map<std::string, int64_t> name_ids;
  int64_t line_number = 0;
  while (!text.empty()) {
    const size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim(line).empty()) continue;
    const size_t tab = line.find('\t');
    if (tab == std::string_view::npos)
      fail_file_line(list_file_, line_number, std::string("expected '<file><TAB><") + second + ">', found no TAB");
    if (line.find('\t', tab + 1) != std::string_view::npos)
      fail_file_line(list_file_, line_number,
                     std::string("expected '<file><TAB><") + second + ">', found more than one TAB");
    const std::string_view file = trim(line.substr(0, tab));
    const std::string_view value = trim(line.substr(tab + 1));
    if (file.empty()) fail_file_line(list_file_, line_number, "empty file name");
    if (value.empty())
      fail_file_line(list_file_, line_number, std::string("empty ") + second + " for " + std::string(file));
    ImageFolderEntry entry{std::string(file), "", -1, line_number};
    if (captions) {
      entry.caption = std::string(value);
    } else {
      const std::optional<int64_t> id = parse_class_id(value);
      if (!numeric_labels) numeric_labels = id.has_value();
      if (*numeric_labels) {
        if (!id)
          fail_file_line(list_file_, line_number,
                         "label '" + std::string(value) +
                             "' is not a non-negative integer (the first line's label made this a file of class ids)");
        if (*id > kMaxClassId)
          fail_file_line(list_file_, line_number, "class id " + std::to_string(*id) + " is implausibly large");
        entry.label = *id;
        n_classes_ = std::max(n_classes_, *id + 1);
      } else {
        auto [it, added] = name_ids.try_emplace(std::string(value), static_cast<int64_t>(class_names_.size()));
        if (added) class_names_.emplace_back(value);
        entry.label = it->second;
        entry.caption = std::string(value);
      }
    }
    entries_.push_back(std::move(entry));
  }
  if (entries_.empty()) fail_file(list_file_, std::string("no entries (expected lines '<file><TAB><") + second + ">')");
  if (!captions && !*numeric_labels) n_classes_ = static_cast<int64_t>(class_names_.size());
}

fs::path ImageFolder::path_of(int64_t index) const { return folder_ / entries_.at(static_cast<size_t>(index)).file; }

std::optional<core::Tensor<float>> ImageFolder::load(int64_t index, const ImageLoadOptions& options,
                                                     SkippedImages& skipped) const {
  const ImageFolderEntry& entry = entries_.at(static_cast<size_t>(index));
  const fs::path path = path_of(index);
  std::error_code error;
  if (!fs::exists(path, error)) {
    skipped.add(entry.file, "missing file");
    return std::nullopt;
  }
  core::Tensor<float> image;
  try {
    image = read_png_float(path, options.color);
  } catch (const FileError& e) {
    skipped.add(entry.file, e.problem());
    return std::nullopt;
  }
  const int64_t height = image.shape[1], width = image.shape[2];
  switch (options.size_policy) {
    case SizePolicy::kKeep:
      break;
    case SizePolicy::kRequire:
      if (width != options.width || height != options.height) {
        skipped.add(entry.file,
                    "is " + size_string(width, height) + ", expected " + size_string(options.width, options.height));
        return std::nullopt;
      }
      break;
    case SizePolicy::kResize:
      image = resize_center_crop(image, options.height, options.width);
      break;
  }
  return image;
}

LoadedImages ImageFolder::load_range(int64_t begin, int64_t end, const ImageLoadOptions& options,
                                     SkippedImages& skipped) const {
  if (options.size_policy == SizePolicy::kKeep || options.width <= 0 || options.height <= 0)
    throw std::invalid_argument("ImageFolder::load_range: stacking needs a size (kRequire or kResize, width, height)");
  if (begin < 0 || end < begin || end > size())
    throw std::invalid_argument("ImageFolder::load_range: [" + std::to_string(begin) + ", " + std::to_string(end) +
                                ") is outside the " + std::to_string(size()) + " entries");
  const int64_t channels = static_cast<int64_t>(options.color);
  const int64_t image_size = channels * options.height * options.width;
  LoadedImages loaded;
  std::vector<float> pixels;
  pixels.reserve(static_cast<size_t>((end - begin) * image_size));
  for (int64_t i = begin; i < end; ++i) {
    std::optional<core::Tensor<float>> image = load(i, options, skipped);
    if (!image) continue;
    pixels.insert(pixels.end(), image->data.begin(), image->data.end());
    loaded.entries.push_back(i);
  }
  loaded.images.shape = {static_cast<int64_t>(loaded.entries.size()), channels, options.height, options.width};
  loaded.images.data = std::move(pixels);
  return loaded;
}

}  // namespace starflow::data
