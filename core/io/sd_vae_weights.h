// SD-VAE weights from the files they are published in, under their own names: a diffusers model directory
// (config.json + diffusion_pytorch_model.safetensors, with today's attention names to_q/to_k/to_v/to_out.0 or the
// deprecated query/key/value/proj_attn that sd-vae-ft-ema's file most likely carries), or a CompVis/LDM single
// file (encoder.down.i.block.j..., reversed decoder block numbers, 1×1-conv attention weights [C, C, 1, 1],
// optionally under first_stage_model. inside a whole Stable-Diffusion checkpoint; its other tensors, such as
// loss.* and model_ema.*, are ignored). The scheme is found per tensor from the names present. F32, F16, BF16
// (and F64) tensors are accepted.
#pragma once
#include <string>
#include <vector>

#include "core/backends/cpu/cpu_backend.h"
#include "core/io/safetensors.h"
#include "core/models/sd_vae.h"

namespace starflow::core::io {

// A diffusers config.json; errors "<path>: key 'x': problem" (or "<path>: cannot open ...").
SdVaeConfig read_sd_vae_config(const std::string& path);

// The names one parameter (given by its diffusers name) may carry in a file, in the order they are looked up:
// the diffusers name, its deprecated attention name (when it has one), the CompVis/LDM name, and that under
// first_stage_model. `num_blocks`: the config's number of blocks (LDM numbers the decoder's blocks the other way).
std::vector<std::string> sd_vae_tensor_names(const std::string& diffusers_name, int64_t num_blocks);

// Copies every parameter of `model` from `file`, each looked up as prefix + one of sd_vae_tensor_names (prefix:
// "param." or "ldm." in the golden fixture, "" in real files). Trailing unit axes of a found tensor are ignored
// (LDM's [C, C, 1, 1] attention weights are the Linear weights [C, C]). Throws std::runtime_error with one line:
// "<path>: no tensor 'NAME' (nor its deprecated/LDM names)", or "<path>: tensor 'NAME' has shape [..], expected
// [..] from <config_source>", or a dtype that is not a float.
template <class Backend>
void load_sd_vae_weights(SdVae<Backend>& model, const SafeTensorsFile& file, const std::string& prefix = "",
                         const std::string& config_source = "the config");

// Builds and loads a VAE. `path`: a diffusers model directory (config.json and diffusion_pytorch_model.safetensors;
// a pipeline directory's vae/ subfolder is taken when `path` has one), or one .safetensors file with diffusers or
// LDM names. The config is `config_path` when given; for a single file without one, the config.json beside it
// when there is one, else sd-vae-ft-ema's (SdVaeConfig::sd_vae_ft_ema(): its scaling_factor 0.18215 then applies,
// so give the config of any other VAE explicitly; a different architecture fails on the first tensor shape).
template <class T>
SdVae<CpuBackend<T>> load_sd_vae(const std::string& path, const std::string& config_path = "");

}  // namespace starflow::core::io
