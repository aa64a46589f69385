// SD-VAE weight loading: the three naming schemes mapped onto the diffusers names the model registers, and the
// directory / single-file conventions of the published checkpoints.
#include "core/io/sd_vae_weights.h"

#include <filesystem>
#include <stdexcept>
#include <string_view>
#include <type_traits>

#include "core/io/files.h"

namespace starflow::core::io {

namespace {

namespace fs = std::filesystem;

std::vector<std::string> split(const std::string& name) {
  std::vector<std::string> parts;
  size_t begin = 0;
  while (true) {
    const size_t dot = name.find('.', begin);
    parts.push_back(name.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin));
    if (dot == std::string::npos) return parts;
    begin = dot + 1;
  }
}

std::string join(const std::vector<std::string>& parts, size_t from) {
  std::string out;
  for (size_t i = from; i < parts.size(); ++i) out += (out.empty() ? "" : ".") + parts[i];
  return out;
}

// A resnet's own tensor names: LDM calls the 1×1 shortcut nin_shortcut.
std::string ldm_resnet_tail(const std::string& tail) {
  return tail.starts_with("conv_shortcut.") ? "nin_shortcut." + tail.substr(14) : tail;
}

// The attention projections: diffusers' current name → (deprecated diffusers name, LDM name).
struct AttentionName {
  std::string_view current, deprecated, ldm;
};
constexpr AttentionName kAttentionNames[] = {
    {"to_q", "query", "q"}, {"to_k", "key", "k"}, {"to_v", "value", "v"}, {"to_out.0", "proj_attn", "proj_out"}};

// The CompVis/LDM name of a diffusers parameter name (README_TEXT_AND_VAE §6.3); the name itself when both agree.
std::string ldm_name(const std::string& name, int64_t num_blocks) {
  const std::vector<std::string> p = split(name);
  if (p.size() < 3) return name;
  const std::string& part = p[0];
  // part.down_blocks.i.resnets.j.* / part.down_blocks.i.downsamplers.0.conv.*
  if (part == "encoder" && p[1] == "down_blocks" && p.size() > 4) {
    if (p[3] == "resnets") return "encoder.down." + p[2] + ".block." + p[4] + "." + ldm_resnet_tail(join(p, 5));
    if (p[3] == "downsamplers") return "encoder.down." + p[2] + ".downsample." + join(p, 5);
  }
  // decoder.up_blocks.i.*: LDM numbers the blocks from the full-resolution end.
  if (part == "decoder" && p[1] == "up_blocks" && p.size() > 4) {
    const std::string ldm_block = std::to_string(num_blocks - 1 - std::stoll(p[2]));
    if (p[3] == "resnets") return "decoder.up." + ldm_block + ".block." + p[4] + "." + ldm_resnet_tail(join(p, 5));
    if (p[3] == "upsamplers") return "decoder.up." + ldm_block + ".upsample." + join(p, 5);
  }
  if (p[1] == "mid_block" && p.size() > 4) {
    if (p[2] == "resnets") return part + ".mid.block_" + std::to_string(std::stoll(p[3]) + 1) + "." +
                                  ldm_resnet_tail(join(p, 4));
    if (p[2] == "attentions") {
      const std::string tail = join(p, 4);
      if (tail.starts_with("group_norm.")) return part + ".mid.attn_1.norm." + tail.substr(11);
      for (const AttentionName& a : kAttentionNames)
        if (tail.starts_with(std::string(a.current) + "."))
          return part + ".mid.attn_1." + std::string(a.ldm) + tail.substr(a.current.size());
    }
  }
  if (p[1] == "conv_norm_out") return part + ".norm_out." + join(p, 2);
  return name;
}

// The deprecated diffusers attention name (query/key/value/proj_attn), or "" when the name has none.
std::string deprecated_name(const std::string& name) {
  const size_t at = name.find(".attentions.0.");
  if (at == std::string::npos) return "";
  const std::string head = name.substr(0, at + 14), tail = name.substr(at + 14);
  for (const AttentionName& a : kAttentionNames)
    if (tail.starts_with(std::string(a.current) + "."))
      return head + std::string(a.deprecated) + tail.substr(a.current.size());
  return "";
}

// found equals expected once trailing unit axes beyond expected's rank are dropped.
bool same_shape_but_unit_axes(const Shape& found, const Shape& expected) {
  if (found.size() < expected.size()) return false;
  for (size_t i = 0; i < found.size(); ++i) {
    if (i < expected.size() && found[i] != expected[i]) return false;
    if (i >= expected.size() && found[i] != 1) return false;
  }
  return true;
}

bool is_float_dtype(const std::string& dtype) {
  return dtype == "F32" || dtype == "F16" || dtype == "BF16" || dtype == "F64";
}

}  // namespace

SdVaeConfig read_sd_vae_config(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return SdVaeConfig::from_json(std::string(bytes.begin(), bytes.end()), path);
}

std::vector<std::string> sd_vae_tensor_names(const std::string& diffusers_name, int64_t num_blocks) {
  std::vector<std::string> names{diffusers_name};
  const std::string deprecated = deprecated_name(diffusers_name);
  if (!deprecated.empty()) names.push_back(deprecated);
  const std::string ldm = ldm_name(diffusers_name, num_blocks);
  if (ldm != diffusers_name) names.push_back(ldm);
  names.push_back("first_stage_model." + ldm);
  return names;
}

template <class Backend>
void load_sd_vae_weights(SdVae<Backend>& model, const SafeTensorsFile& file, const std::string& prefix,
                         const std::string& config_source) {
  using T = typename Backend::Scalar;
  const Backend& be = model.backend();
  for (const ParameterView& v : model.layout().views()) {
    std::string found;
    for (const std::string& candidate : sd_vae_tensor_names(v.name, model.config().num_blocks()))
      if (file.has(prefix + candidate)) {
        found = prefix + candidate;
        break;
      }
    if (found.empty())
      throw std::runtime_error(file.path() + ": no tensor '" + prefix + v.name + "' (nor its deprecated/LDM names)");
    const TensorInfo& info = file.info(found);
    if (!same_shape_but_unit_axes(info.shape, v.global_shape))
      throw std::runtime_error(file.path() + ": tensor '" + found + "' has shape " + shape_string(info.shape) +
                               ", expected " + shape_string(v.global_shape) + " from " + config_source);
    if (!is_float_dtype(info.dtype))
      throw std::runtime_error(file.path() + ": tensor '" + found + "' has dtype " + info.dtype +
                               ", expected F32, F16, BF16 or F64");
    // Read as double for a double model (F64 files stay exact), as float otherwise.
    using Read = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const Tensor<Read> t = file.read<Read>(found);
    std::vector<T> converted(t.data.begin(), t.data.end());
    be.upload(model.parameters().data() + v.offset, converted.data(), v.size);
  }
}

template <class T>
SdVae<CpuBackend<T>> load_sd_vae(const std::string& path, const std::string& config_path) {
  fs::path weights = path, config = config_path;
  if (fs::is_directory(weights)) {
    // A whole diffusers pipeline keeps its VAE in vae/.
    if (!fs::exists(weights / "config.json") && fs::exists(weights / "vae" / "config.json")) weights /= "vae";
    if (config.empty()) config = weights / "config.json";
    const fs::path dir = weights;
    weights = dir / "diffusion_pytorch_model.safetensors";
    if (!fs::exists(weights)) {
      if (fs::exists(dir / "diffusion_pytorch_model.bin"))
        fail_file(dir, "has diffusion_pytorch_model.bin but no diffusion_pytorch_model.safetensors (PyTorch pickles "
                       "are not read: convert the weights to safetensors)");
      fail_file(dir, "no diffusion_pytorch_model.safetensors (expected a diffusers VAE directory)");
    }
  } else if (config.empty() && fs::exists(weights.parent_path() / "config.json")) {
    config = weights.parent_path() / "config.json";
  }
  const SdVaeConfig cfg = config.empty() ? SdVaeConfig::sd_vae_ft_ema() : read_sd_vae_config(config.string());
  const std::string source = config.empty() ? "the built-in sd-vae-ft-ema config" : config.string();
  const SafeTensorsFile file = SafeTensorsFile::open(weights.string());
  SdVae<CpuBackend<T>> model(cfg);
  load_sd_vae_weights(model, file, "", source);
  return model;
}

template void load_sd_vae_weights<CpuBackend<float>>(SdVae<CpuBackend<float>>&, const SafeTensorsFile&,
                                                     const std::string&, const std::string&);
template void load_sd_vae_weights<CpuBackend<double>>(SdVae<CpuBackend<double>>&, const SafeTensorsFile&,
                                                      const std::string&, const std::string&);
template SdVae<CpuBackend<float>> load_sd_vae<float>(const std::string&, const std::string&);
template SdVae<CpuBackend<double>> load_sd_vae<double>(const std::string&, const std::string&);

}  // namespace starflow::core::io
