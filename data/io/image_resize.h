// Resizing images to the training resolution (64-px emoji → 32 or 16 px, odd-sized photos → squares):
// center crop to the target aspect ratio, then resample each axis, averaging over the covered area when
// shrinking (antialiased: a 2:1 shrink is the exact 2×2 mean) and interpolating bilinearly when enlarging.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace starflow::data {

// image [C, H, W] → [C, height, width]. Throws std::invalid_argument for a bad shape or size.
core::Tensor<float> resize_center_crop(const core::Tensor<float>& image, int64_t height, int64_t width);

}  // namespace starflow::data
