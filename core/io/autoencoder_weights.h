// Autoencoder weights as safetensors: every parameter under its `encoder.*` / `decoder.*` name, and the
// AutoencoderConfig (widths, latent channels, downsampling, image size, scaling_factor) as JSON in the
// `config` metadata, so a file alone rebuilds the model.
#pragma once
#include <map>
#include <string>

#include "core/io/safetensors.h"
#include "core/models/autoencoder.h"

namespace starflow::core::io {

// The config in a weights file's `config` metadata; throws "<path>: metadata 'config': ...".
AutoencoderConfig read_autoencoder_config(const SafeTensorsFile& file);

// Copies every parameter of `model` from `file` (any float dtype). Throws "<path>: no tensor 'NAME'" or
// a shape error naming the expected shape.
template <class T>
void load_autoencoder_weights(Autoencoder<T>& model, const SafeTensorsFile& file);

// Builds the model from the file's config and loads its weights.
template <class T>
Autoencoder<T> load_autoencoder(const std::string& path);

// Writes the parameters as "F32" (exact for float models) or "F16" (half the size; rounds to nearest
// even) with the config (+ extra metadata) to `path`, atomically.
template <class T>
void save_autoencoder(const Autoencoder<T>& model, const std::string& path, const std::string& dtype = "F32",
                      std::map<std::string, std::string> metadata = {});

}  // namespace starflow::core::io
