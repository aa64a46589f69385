// The SD VAE's configuration, tensor names and weight loading (core/models/sd_vae_config.h, core/io/sd_vae_weights.h),
// and the model's own checks: config.json parsing and its one-line errors, the diffusers/deprecated/LDM name
// mapping and the real checkpoint's 248-tensor table, loading a diffusers directory, a pipeline's vae/ folder and
// LDM single files, F16/BF16 files against F32, errors for a missing tensor, a shape that disagrees with
// config.json and a non-float dtype, and float against double on the fixture's weights.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/io/float16.h"
#include "core/io/safetensors.h"
#include "core/io/sd_vae_weights.h"
#include "core/models/sd_vae.h"
#include "tests/golden/golden_fixtures.h"

using namespace starflow::core;
namespace fs = std::filesystem;

namespace {

// stabilityai/sd-vae-ft-ema's config.json (README_TEXT_AND_VAE.md §6.2).
const char* kFtEmaConfig = R"({"_class_name": "AutoencoderKL", "_diffusers_version": "0.4.2", "act_fn": "silu",
 "block_out_channels": [128, 256, 512, 512],
 "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
 "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
 "out_channels": 3, "sample_size": 256,
 "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]})";

std::string fixture_path() { return starflow::testing::golden_fixture("sd_vae_tiny.safetensors"); }

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("starflow_sd_vae_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

// Writes tensors (already renamed) in `dtype` (F32, F16, BF16; I64 for `int_tensor`).
void write_tensors(const fs::path& path, const std::vector<std::pair<std::string, Tensor<float>>>& tensors,
                   const std::string& dtype, const std::string& int_tensor = "") {
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<io::TensorToWrite> out;
  bytes.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    std::vector<uint8_t>& b = bytes.emplace_back();
    std::string d = name == int_tensor ? "I64" : dtype;
    for (float x : t.data) {
      if (d == "F32") {
        const auto* p = reinterpret_cast<const uint8_t*>(&x);
        b.insert(b.end(), p, p + 4);
      } else if (d == "I64") {
        const int64_t v = static_cast<int64_t>(x);
        const auto* p = reinterpret_cast<const uint8_t*>(&v);
        b.insert(b.end(), p, p + 8);
      } else {
        const uint16_t h = d == "F16" ? io::float_to_half_bits(x) : io::float_to_bfloat16_bits(x);
        b.push_back(static_cast<uint8_t>(h & 0xff));
        b.push_back(static_cast<uint8_t>(h >> 8));
      }
    }
    out.push_back({name, d, t.shape, b.data(), b.size()});
  }
  io::write_safetensors(path.string(), out);
}

// The fixture's parameters under `scheme` ("param." or "ldm."), renamed by `rename` (empty result: dropped).
std::vector<std::pair<std::string, Tensor<float>>> fixture_parameters(
    const std::string& scheme, const std::function<std::string(const std::string&)>& rename) {
  const io::SafeTensorsFile f = io::SafeTensorsFile::open(fixture_path());
  std::vector<std::pair<std::string, Tensor<float>>> out;
  for (const std::string& n : f.names()) {
    if (!n.starts_with(scheme)) continue;
    const std::string name = rename(n.substr(scheme.size()));
    if (!name.empty()) out.emplace_back(name, f.read<float>(n));
  }
  return out;
}

std::string fixture_config_json() {
  return io::SafeTensorsFile::open(fixture_path()).metadata_value("config");
}

// A diffusers directory holding the fixture's VAE (weights in `dtype`).
fs::path diffusers_dir(const std::string& name, const std::string& dtype,
                       const std::function<std::string(const std::string&)>& rename = [](const std::string& n) {
                         return n;
                       }) {
  const fs::path dir = fresh_dir(name);
  write_text(dir / "config.json", fixture_config_json());
  write_tensors(dir / "diffusion_pytorch_model.safetensors", fixture_parameters("param.", rename), dtype);
  return dir;
}

struct Outputs {
  std::vector<float> mean, logvar, image;
};

// The fixture's input.x encoded and input.z decoded.
template <class T>
Outputs run(SdVae<CpuBackend<T>>& vae) {
  const io::SafeTensorsFile f = io::SafeTensorsFile::open(fixture_path());
  const Tensor<float> x = f.read<float>("input.x"), z = f.read<float>("input.z");
  const int64_t B = x.shape[0], H = x.shape[2], W = x.shape[3], h = z.shape[2], w = z.shape[3];
  const int64_t L = vae.config().latent_channels, f8 = vae.config().downsampling();
  std::vector<T> xt(x.data.begin(), x.data.end()), zt(z.data.begin(), z.data.end());
  std::vector<T> mean(B * L * (H / f8) * (W / f8)), logvar(mean.size()), image(z.shape[0] * 3 * h * f8 * w * f8);
  vae.encode(xt.data(), B, H, W, mean.data(), logvar.data());
  vae.decode(zt.data(), z.shape[0], h, w, image.data());
  return {{mean.begin(), mean.end()}, {logvar.begin(), logvar.end()}, {image.begin(), image.end()}};
}

SdVae<CpuBackend<float>> fixture_vae(const std::string& prefix = "param.") {
  const io::SafeTensorsFile f = io::SafeTensorsFile::open(fixture_path());
  SdVae<CpuBackend<float>> vae(SdVaeConfig::from_json(f.metadata_value("config"), "fixture"));
  io::load_sd_vae_weights(vae, f, prefix);
  return vae;
}

double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::abs(double(a[i]) - double(b[i])));
    s = std::max(s, std::abs(double(b[i])));
  }
  return d / s;
}

}  // namespace

// ---------------------------------------------------------------- config

TEST(SdVaeConfig, ReadsTheRealCheckpointsConfig) {
  const SdVaeConfig c = SdVaeConfig::from_json(kFtEmaConfig, "config.json");
  EXPECT_EQ(c.block_out_channels, (std::vector<int64_t>{128, 256, 512, 512}));
  EXPECT_EQ(c.layers_per_block, 2);
  EXPECT_EQ(c.norm_num_groups, 32);
  EXPECT_EQ(c.latent_channels, 4);
  EXPECT_EQ(c.downsampling(), 8);
  EXPECT_DOUBLE_EQ(c.scaling_factor, 0.18215);  // no scaling_factor key: diffusers' default
  EXPECT_DOUBLE_EQ(c.shift_factor, 0.0);
  const SdVaeConfig builtin = SdVaeConfig::sd_vae_ft_ema();
  EXPECT_EQ(builtin.block_out_channels, c.block_out_channels);
  EXPECT_EQ(builtin.norm_num_groups, c.norm_num_groups);
}

TEST(SdVaeConfig, RefusesWhatIsNotImplementedInOneLine) {
  // The real config with one key set to a JSON value.
  auto error = [](const std::string& key, const std::string& value) {
    nlohmann::json j = nlohmann::json::parse(kFtEmaConfig);
    j[key] = nlohmann::json::parse(value);
    return error_of([&] { SdVaeConfig::from_json(j.dump(), "vae/config.json"); });
  };
  EXPECT_EQ(error("act_fn", "\"gelu\""), "vae/config.json: key 'act_fn': only \"silu\" is implemented, found \"gelu\"");
  EXPECT_EQ(error("down_block_types", "[\"DownEncoderBlock2D\", \"AttnDownEncoderBlock2D\", \"DownEncoderBlock2D\", "
                                      "\"DownEncoderBlock2D\"]"),
            "vae/config.json: key 'down_block_types': only DownEncoderBlock2D is implemented, found "
            "\"AttnDownEncoderBlock2D\"");
  EXPECT_EQ(error("norm_num_groups", "48"),
            "vae/config.json: key 'norm_num_groups': must divide every width of block_out_channels (128)");
  EXPECT_EQ(error("use_quant_conv", "false"),
            "vae/config.json: key 'use_quant_conv': only true (the sd-vae-ft-ema architecture) is implemented");
  EXPECT_EQ(error("latents_mean", "[0.1, 0.2, 0.3, 0.4]"),
            "vae/config.json: key 'latents_mean': per-channel latent statistics are not implemented (must be null)");
  EXPECT_EQ(error("mid_block_type", "\"UNetMidBlock2D\""),
            "vae/config.json: key 'mid_block_type': unknown AutoencoderKL setting");
  EXPECT_EQ(error("layers_per_block", "\"2\""), "vae/config.json: key 'layers_per_block': must be an integer");
  EXPECT_EQ(error("up_block_types", "[\"UpDecoderBlock2D\"]"),
            "vae/config.json: key 'up_block_types': lists 1 blocks, block_out_channels 4");
  EXPECT_EQ(error_of([] { SdVaeConfig::from_json(R"({"in_channels": 3})", "c.json"); }),
            "c.json: key 'out_channels': missing (the architecture keys of AutoencoderKL must all be given)");
  EXPECT_EQ(error_of([] { SdVaeConfig::from_json("{", "c.json"); }).substr(0, 24), "c.json: not valid JSON: ");
  // Keys that change nothing computed here are accepted.
  EXPECT_EQ(error("force_upcast", "true"), "(no error)");
  EXPECT_EQ(error("shift_factor", "null"), "(no error)");
  EXPECT_EQ(error("scaling_factor", "0.13025"), "(no error)");
}

// ---------------------------------------------------------------- names

TEST(SdVaeNames, MapDiffusersToDeprecatedAndLdmNames) {
  using V = std::vector<std::string>;
  EXPECT_EQ(io::sd_vae_tensor_names("decoder.up_blocks.0.resnets.0.conv1.weight", 4),
            (V{"decoder.up_blocks.0.resnets.0.conv1.weight", "decoder.up.3.block.0.conv1.weight",
               "first_stage_model.decoder.up.3.block.0.conv1.weight"}));
  EXPECT_EQ(io::sd_vae_tensor_names("decoder.up_blocks.2.resnets.0.conv_shortcut.bias", 4)[1],
            "decoder.up.1.block.0.nin_shortcut.bias");
  EXPECT_EQ(io::sd_vae_tensor_names("decoder.up_blocks.1.upsamplers.0.conv.weight", 4)[1],
            "decoder.up.2.upsample.conv.weight");
  EXPECT_EQ(io::sd_vae_tensor_names("encoder.down_blocks.1.downsamplers.0.conv.bias", 4)[1],
            "encoder.down.1.downsample.conv.bias");
  EXPECT_EQ(io::sd_vae_tensor_names("encoder.down_blocks.2.resnets.1.norm2.weight", 4)[1],
            "encoder.down.2.block.1.norm2.weight");
  EXPECT_EQ(io::sd_vae_tensor_names("decoder.mid_block.resnets.1.norm2.bias", 4)[1], "decoder.mid.block_2.norm2.bias");
  EXPECT_EQ(io::sd_vae_tensor_names("encoder.mid_block.attentions.0.group_norm.weight", 4)[1],
            "encoder.mid.attn_1.norm.weight");
  EXPECT_EQ(io::sd_vae_tensor_names("encoder.mid_block.attentions.0.to_out.0.weight", 4),
            (V{"encoder.mid_block.attentions.0.to_out.0.weight", "encoder.mid_block.attentions.0.proj_attn.weight",
               "encoder.mid.attn_1.proj_out.weight", "first_stage_model.encoder.mid.attn_1.proj_out.weight"}));
  EXPECT_EQ(io::sd_vae_tensor_names("decoder.mid_block.attentions.0.to_q.bias", 4)[1],
            "decoder.mid_block.attentions.0.query.bias");
  EXPECT_EQ(io::sd_vae_tensor_names("decoder.conv_norm_out.weight", 4)[1], "decoder.norm_out.weight");
  EXPECT_EQ(io::sd_vae_tensor_names("quant_conv.weight", 4), (V{"quant_conv.weight", "first_stage_model.quant_conv.weight"}));
  // The tiny fixture's three blocks number the decoder's the other way round as well.
  EXPECT_EQ(io::sd_vae_tensor_names("decoder.up_blocks.0.resnets.2.conv2.weight", 3)[1],
            "decoder.up.2.block.2.conv2.weight");
}

// The real checkpoint's parameter table (README_TEXT_AND_VAE.md Appendix A): 248 tensors in state_dict order.
TEST(SdVaeNames, TheRealCheckpointsTableInStateDictOrder) {
  const SdVae<CpuBackend<float>> vae(SdVaeConfig::sd_vae_ft_ema());
  const auto& views = vae.layout().views();
  ASSERT_EQ(views.size(), 248u);
  EXPECT_EQ(vae.layout().parameter_count(), 83653863);
  const std::pair<size_t, const char*> rows[] = {
      {0, "encoder.conv_in.weight"},
      {28, "encoder.down_blocks.1.resnets.0.conv_shortcut.weight"},
      {58, "encoder.down_blocks.2.downsamplers.0.conv.weight"},
      {76, "encoder.mid_block.attentions.0.group_norm.weight"},
      {84, "encoder.mid_block.attentions.0.to_out.0.weight"},
      {86, "encoder.mid_block.resnets.0.norm1.weight"},
      {104, "encoder.conv_out.weight"},
      {106, "decoder.conv_in.weight"},
      {132, "decoder.up_blocks.0.upsamplers.0.conv.weight"},
      {196, "decoder.up_blocks.3.resnets.0.conv_shortcut.weight"},
      {214, "decoder.mid_block.attentions.0.group_norm.weight"},
      {240, "decoder.conv_norm_out.weight"},
      {244, "quant_conv.weight"},
      {247, "post_quant_conv.bias"},
  };
  for (const auto& [i, name] : rows) EXPECT_EQ(views[i].name, name) << i;
  EXPECT_EQ(views[84].global_shape, (Shape{512, 512}));
  EXPECT_EQ(views[104].global_shape, (Shape{8, 512, 3, 3}));
  EXPECT_EQ(views[168].global_shape, (Shape{256, 512, 1, 1}));
  EXPECT_EQ(views[162].global_shape, (Shape{256, 512, 3, 3}));
}

// ---------------------------------------------------------------- loading

TEST(SdVaeWeights, DiffusersDirectoryEqualsTheFixtureAndPipelineFolder) {
  SdVae<CpuBackend<float>> reference = fixture_vae();
  const Outputs expected = run(reference);
  const fs::path dir = diffusers_dir("dir", "F32");
  SdVae<CpuBackend<float>> vae = io::load_sd_vae<float>(dir.string());
  EXPECT_EQ(vae.parameters(), reference.parameters());
  const Outputs got = run(vae);
  EXPECT_EQ(got.mean, expected.mean);
  EXPECT_EQ(got.image, expected.image);
  // A pipeline directory keeps its VAE in vae/.
  const fs::path pipeline = fresh_dir("pipeline");
  fs::rename(dir, pipeline / "vae");
  EXPECT_EQ(io::load_sd_vae<float>(pipeline.string()).parameters(), reference.parameters());
  fs::remove_all(pipeline);
}

TEST(SdVaeWeights, DeprecatedAttentionNamesLoadTheSameWeights) {
  const SdVae<CpuBackend<float>> reference = fixture_vae();
  const fs::path dir = diffusers_dir("deprecated", "F32", [](const std::string& n) {
    std::string r = n;
    for (auto [from, to] : {std::pair{".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."},
                            {".to_out.0.", ".proj_attn."}})
      if (const size_t at = r.find(from); at != std::string::npos) r.replace(at, std::string(from).size(), to);
    return r;
  });
  EXPECT_TRUE(io::SafeTensorsFile::open((dir / "diffusion_pytorch_model.safetensors").string())
                  .has("encoder.mid_block.attentions.0.proj_attn.weight"));
  EXPECT_EQ(io::load_sd_vae<float>(dir.string()).parameters(), reference.parameters());
  fs::remove_all(dir);
}

TEST(SdVaeWeights, LdmSingleFileWithPrefixAndOtherTensors) {
  const SdVae<CpuBackend<float>> reference = fixture_vae();
  const fs::path dir = fresh_dir("ldm");
  auto tensors = fixture_parameters("ldm.", [](const std::string& n) { return "first_stage_model." + n; });
  tensors.emplace_back("loss.logvar", Tensor<float>({1}, 0.5f));
  tensors.emplace_back("model_ema.decay", Tensor<float>({}, 0.9999f));
  tensors.emplace_back("model.diffusion_model.out.2.bias", Tensor<float>({4}, 1.f));
  const fs::path file = dir / "vae-ft-ema.safetensors";
  write_tensors(file, tensors, "F32");
  // No config beside it: the built-in sd-vae-ft-ema config, which the tiny weights do not fit.
  EXPECT_EQ(error_of([&] { io::load_sd_vae<float>(file.string()); }),
            file.string() + ": tensor 'first_stage_model.encoder.conv_in.weight' has shape [16, 3, 3, 3], expected "
                            "[128, 3, 3, 3] from the built-in sd-vae-ft-ema config");
  write_text(dir / "tiny.json", fixture_config_json());
  EXPECT_EQ(io::load_sd_vae<float>(file.string(), (dir / "tiny.json").string()).parameters(), reference.parameters());
  fs::rename(dir / "tiny.json", dir / "config.json");  // a config.json beside the file is taken by default
  EXPECT_EQ(io::load_sd_vae<float>(file.string()).parameters(), reference.parameters());
  fs::remove_all(dir);
}

TEST(SdVaeWeights, HalfAndBfloat16FilesMatchFloat32WithinTheirRounding) {
  SdVae<CpuBackend<float>> reference = fixture_vae();
  const Outputs expected = run(reference);
  for (const std::string dtype : {"F16", "BF16"}) {
    SCOPED_TRACE(dtype);
    const fs::path dir = diffusers_dir("half_" + dtype, dtype);
    SdVae<CpuBackend<float>> vae = io::load_sd_vae<float>(dir.string());
    // Every weight is the F32 weight rounded to the file's type, exactly.
    for (const ParameterView& v : vae.layout().views())
      for (int64_t i = 0; i < v.size; ++i) {
        const float w = reference.parameters()[v.offset + i];
        const float rounded = dtype == "F16" ? io::half_bits_to_float(io::float_to_half_bits(w))
                                             : io::bfloat16_bits_to_float(io::float_to_bfloat16_bits(w));
        ASSERT_EQ(vae.parameters()[v.offset + i], rounded) << v.name << "[" << i << "]";
      }
    // And the results move by about the weights' relative rounding (2^-11 and 2^-8) times a few layers.
    const Outputs got = run(vae);
    const double tolerance = dtype == "F16" ? 5e-3 : 5e-2;
    EXPECT_LE(max_rel(got.mean, expected.mean), tolerance);
    EXPECT_LE(max_rel(got.logvar, expected.logvar), tolerance);
    EXPECT_LE(max_rel(got.image, expected.image), tolerance);
    EXPECT_GT(max_rel(got.image, expected.image), 0.0);  // the rounding did reach the results
    fs::remove_all(dir);
  }
}

TEST(SdVaeWeights, ErrorsNameTheFileAndTheTensor) {
  // A missing tensor.
  const fs::path missing = diffusers_dir("missing", "F32", [](const std::string& n) {
    return n == "decoder.up_blocks.0.resnets.0.conv1.weight" ? std::string() : n;
  });
  const std::string weights = (missing / "diffusion_pytorch_model.safetensors").string();
  EXPECT_EQ(error_of([&] { io::load_sd_vae<float>(missing.string()); }),
            weights + ": no tensor 'decoder.up_blocks.0.resnets.0.conv1.weight' (nor its deprecated/LDM names)");
  // A config.json that disagrees with the weights: the first tensor whose shape it changes.
  std::string cfg = fixture_config_json();
  cfg.replace(cfg.find("[16, 32, 32]"), 12, "[16, 32, 64]");
  write_text(missing / "config.json", cfg);
  EXPECT_EQ(error_of([&] { io::load_sd_vae<float>(missing.string()); }),
            weights + ": tensor 'encoder.down_blocks.2.resnets.0.conv1.weight' has shape [32, 32, 3, 3], expected "
                      "[64, 32, 3, 3] from " + (missing / "config.json").string());
  fs::remove_all(missing);
  // A tensor that is not a float.
  const fs::path ints = fresh_dir("ints");
  write_text(ints / "config.json", fixture_config_json());
  write_tensors(ints / "diffusion_pytorch_model.safetensors", fixture_parameters("param.", [](auto n) { return n; }),
                "F32", "quant_conv.bias");
  EXPECT_EQ(error_of([&] { io::load_sd_vae<float>(ints.string()); }),
            (ints / "diffusion_pytorch_model.safetensors").string() +
                ": tensor 'quant_conv.bias' has dtype I64, expected F32, F16, BF16 or F64");
  // A directory with only the PyTorch pickle.
  fs::remove(ints / "diffusion_pytorch_model.safetensors");
  write_text(ints / "diffusion_pytorch_model.bin", "not read");
  EXPECT_EQ(error_of([&] { io::load_sd_vae<float>(ints.string()); }),
            ints.string() + ": has diffusion_pytorch_model.bin but no diffusion_pytorch_model.safetensors (PyTorch "
                            "pickles are not read: convert the weights to safetensors)");
  fs::remove_all(ints);
}

// ---------------------------------------------------------------- the model

TEST(SdVae, FloatMatchesDoubleOnTheFixtureWeights) {
  SdVae<CpuBackend<float>> f = fixture_vae();
  const io::SafeTensorsFile file = io::SafeTensorsFile::open(fixture_path());
  SdVae<CpuBackend<double>> d(f.config());
  io::load_sd_vae_weights(d, file, "ldm.");
  const Outputs of = run(f), od = run(d);
  EXPECT_LE(max_rel(of.mean, od.mean), 1e-5);
  EXPECT_LE(max_rel(of.logvar, od.logvar), 1e-5);
  EXPECT_LE(max_rel(of.image, od.image), 1e-5);
}

TEST(SdVae, RefusesImageSizesTheDownsamplingCannotHalve) {
  SdVae<CpuBackend<float>> vae = fixture_vae();
  std::vector<float> x(3 * 30 * 32), mean(4 * 8 * 8), logvar(mean.size());
  EXPECT_EQ(error_of([&] { vae.encode(x.data(), 1, 30, 32, mean.data(), logvar.data()); }),
            "SdVae::encode: images of 30x32 (batch 1); the sides must be positive multiples of 4");
}

TEST(SdVae, NonSquareImagesAndBatchesAreIndependent) {
  // One image alone gives the same latents as in a batch of two (no statistic crosses images).
  SdVae<CpuBackend<float>> vae = fixture_vae();
  const int64_t H = 16, W = 24, n = 3 * H * W, m = 4 * (H / 4) * (W / 4);
  std::vector<float> x(2 * n);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * float(i));
  std::vector<float> mean2(2 * m), logvar2(2 * m), mean1(m), logvar1(m);
  vae.encode(x.data(), 2, H, W, mean2.data(), logvar2.data());
  vae.encode(x.data() + n, 1, H, W, mean1.data(), logvar1.data());
  for (int64_t i = 0; i < m; ++i) {
    EXPECT_NEAR(mean1[i], mean2[m + i], 1e-6);
    EXPECT_NEAR(logvar1[i], logvar2[m + i], 1e-6);
  }
}
