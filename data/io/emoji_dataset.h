// The captioned emoji set: Google's 64-px emoji PNGs (npm emoji-datasource-google) named by emojibase's
// English labels (npm emojibase-data), joined by tools/fetch-emoji.sh into captions.tsv. On the C++ side
// it is just an ImageFolder with a captions list; this file knows where the script put it.
#pragma once
#include <cstdint>
#include <filesystem>

#include "data/io/image_folder.h"
#include "data/io/npm_cache.h"

namespace starflow::data {

inline constexpr int64_t kEmojiImageSide = 64;  // the stored PNGs are 64×64 RGBA

struct EmojiDatasetPaths {
  std::filesystem::path image_folder;   // <cache>/node_modules/emoji-datasource-google/img/google/64
  std::filesystem::path captions_file;  // <cache>/captions.tsv, file names relative to image_folder
};

EmojiDatasetPaths emoji_dataset_paths(const std::filesystem::path& npm_cache = npm_cache_dir());
// Whether tools/fetch-emoji.sh has run for this cache.
bool emoji_dataset_present(const EmojiDatasetPaths& paths);
// The set as an ImageFolder; a FileError that says to run tools/fetch-emoji.sh when it is absent.
ImageFolder open_emoji_dataset(const std::filesystem::path& npm_cache = npm_cache_dir());

}  // namespace starflow::data
