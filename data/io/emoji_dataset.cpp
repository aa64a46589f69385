// Locating the emoji set that tools/fetch-emoji.sh prepared.
#include "data/io/emoji_dataset.h"

#include <system_error>

#include "core/io/files.h"


namespace starflow::data {

using core::io::fail_file;

namespace fs = std::filesystem;

EmojiDatasetPaths emoji_dataset_paths(const fs::path& npm_cache) {
  return {npm_package_dir("emoji-datasource-google", npm_cache) / "img" / "google" / "64", npm_cache / "captions.tsv"};
}

bool emoji_dataset_present(const EmojiDatasetPaths& paths) {
  std::error_code error;
  return fs::is_directory(paths.image_folder, error) && fs::is_regular_file(paths.captions_file, error);
}

ImageFolder open_emoji_dataset(const fs::path& npm_cache) {
  const EmojiDatasetPaths paths = emoji_dataset_paths(npm_cache);
  if (!emoji_dataset_present(paths))
    fail_file(paths.captions_file, "emoji set not found; run tools/fetch-emoji.sh " + npm_cache.string());
  return ImageFolder::with_captions(paths.image_folder, paths.captions_file);
}

}  // namespace starflow::data
