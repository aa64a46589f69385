// Names and HDF5 types of the shard format (data/FORMAT.md), shared by the writer and the reader so the two
// cannot disagree. Internal to data/.
#pragma once
#include <string>

#include "data/hdf5_check.h"

namespace starflow::data::layout {

inline constexpr const char* kLatents = "/latents";
inline constexpr const char* kSampleIds = "/sample_ids";
inline constexpr const char* kLabels = "/labels";
inline constexpr const char* kLatentLogvar = "/latent_logvar";
// Text, version 2: the valid token rows of every sample back to back, each sample's count, the null caption.
inline constexpr const char* kTextTokens = "/text_tokens";
inline constexpr const char* kTextLengths = "/text_lengths";
inline constexpr const char* kNullText = "/null_text";
// Text, version 1 (read only): padded [N, L, E] with a [N, L] mask.
inline constexpr const char* kTextEmbeddings = "/text_embeddings";
inline constexpr const char* kTextMask = "/text_mask";
inline constexpr const char* kCaptions = "/captions";

inline constexpr const char* kFormat = "format";
inline constexpr const char* kFormatVersion = "format_version";
inline constexpr const char* kAutoencoder = "autoencoder";
inline constexpr const char* kScalingFactor = "scaling_factor";
inline constexpr const char* kLatentShape = "latent_shape";
inline constexpr const char* kTextEncoder = "text_encoder";
inline constexpr const char* kNumClasses = "num_classes";
inline constexpr const char* kTextLength = "text_length";  // version 2: L, the padded length of a batch row
inline constexpr const char* kNumSamples = "num_samples";
inline constexpr const char* kSource = "source";

inline constexpr const char* kNoTextEncoder = "none";

// Samples per chunk of the small per-sample arrays (/sample_ids, /labels: 64 KiB of int64; /text_mask gets
// 64 KiB too), and of /captions. Readers load the first three whole, so only their total size matters.
inline constexpr long long kIndexChunk = 8192;
inline constexpr long long kCaptionChunk = 256;  // 16-byte heap references: 4 KiB

// IEEE binary16, little-endian: HDF5 1.10 predefines no half type. This is the layout h5py writes and
// numpy's float16 reads.
Hdf5Handle half_float_type(const std::string& path);
// bfloat16 (the upper half of an IEEE binary32), little-endian: sign bit 15, 8 exponent bits at 7 (bias 127),
// 7 mantissa bits. HDF5 converts it to any float type on read (h5py: `.astype("float32")`).
Hdf5Handle bfloat16_type(const std::string& path);
// Variable-length UTF-8 string, the type h5py uses for Python str.
Hdf5Handle utf8_string_type(const std::string& path);

}  // namespace starflow::data::layout
