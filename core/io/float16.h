// IEEE binary16 (F16) and bfloat16 (BF16) bit patterns <-> float. Widening is exact; narrowing rounds
// to nearest, ties to even (what PyTorch and CUDA do), so files we write match files they write.
// NaNs stay NaNs (quieted) when narrowed.
#pragma once
#include <bit>
#include <cstdint>

namespace starflow::core::io {

inline float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa·2^-24 is exact in float (at most 10 significant bits).
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf/NaN
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));  // rebias 15 -> 127
}

inline uint16_t float_to_half_bits(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u)  // NaN: keep the top payload bits, force quiet so it cannot become inf
    return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  // 65520 is halfway between 65504 (largest half, odd mantissa) and 65536: ties-to-even gives inf.
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (magnitude >= 0x38800000u) {  // normal half (>= 2^-14)
    uint32_t half = ((magnitude >> 23) - 112u) << 10 | ((magnitude >> 13) & 0x3ffu);
    const uint32_t dropped = magnitude & 0x1fffu;
    if (dropped > 0x1000u || (dropped == 0x1000u && (half & 1u))) ++half;  // carry may bump the exponent
    return static_cast<uint16_t>(sign | half);
  }
  // Subnormal half: result = round(value·2^24). At or below 2^-25 that is 0 (the tie goes to even 0);
  // this also covers float subnormals, which have no implicit bit.
  if (magnitude <= 0x33000000u) return sign;
  const uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - (magnitude >> 23);  // 14..24 in this range
  uint32_t half = significand >> shift;
  const uint32_t dropped = significand & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1u);
  if (dropped > halfway || (dropped == halfway && (half & 1u))) ++half;  // 0x400 is the smallest normal
  return static_cast<uint16_t>(sign | half);
}

inline float bfloat16_bits_to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

inline uint16_t float_to_bfloat16_bits(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN
  // Adding 0x7fff (+1 when the kept part is odd) carries exactly when rounding up; overflow gives inf.
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace starflow::core::io
