// Opens whatever text encoder a path names: a T5 folder (config.json, spiece.model, safetensors weights) or a
// word-vector file in wink's JSON layout. Throws one line naming the path and the problem.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/models/text_encoder.h"

namespace starflow::core::io {

// L: the token count (the flow's txt_size).
std::unique_ptr<TextEncoder> open_text_encoder(const std::string& path, int64_t L);

}  // namespace starflow::core::io
