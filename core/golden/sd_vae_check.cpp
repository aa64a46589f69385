// The SD-VAE fixture's check: the fixture's results recomputed by SdVae<CpuBackend<float>> and compared within the
// README's float32 tolerances, once per naming scheme of the parameters.
#include "core/golden/sd_vae_check.h"

#include <cmath>
#include <stdexcept>

#include "core/backends/cpu/cpu_backend.h"
#include "core/golden/golden_internal.h"
#include "core/io/sd_vae_weights.h"
#include "core/models/sd_vae.h"

namespace starflow::core::golden {

namespace {

// The fixture's aux.* / enc.moments names of the VAE's capture points (SdVaeCapture names).
std::map<std::string, std::string> fixture_names(int64_t num_blocks) {
  std::map<std::string, std::string> m = {
      {"encoder.conv_in", "aux.enc.conv_in"},
      {"encoder.mid_block.attentions.0", "aux.enc.mid_attn"},
      {"encoder.mid_block", "aux.enc.mid"},
      {"encoder.conv_out", "aux.enc.conv_out"},
      {"quant_conv", "enc.moments"},
      {"post_quant_conv", "aux.dec.post_quant_conv"},
      {"decoder.conv_in", "aux.dec.conv_in"},
      {"decoder.mid_block.attentions.0", "aux.dec.mid_attn"},
      {"decoder.mid_block", "aux.dec.mid"},
  };
  for (int64_t i = 0; i < num_blocks; ++i) {
    m["encoder.down_blocks." + std::to_string(i)] = "aux.enc.down." + std::to_string(i);
    m["decoder.up_blocks." + std::to_string(i)] = "aux.dec.up." + std::to_string(i);
  }
  return m;
}

SdVaeConfig fixture_config(const io::SafeTensorsFile& file) {
  return SdVaeConfig::from_json(file.metadata_value("config"), file.path() + ": metadata 'config'");
}

// A 4-D input of the fixture, with its shape.
Tensor<float> input(const io::SafeTensorsFile& file, const std::string& name, int64_t channels) {
  if (!file.has(name)) throw std::runtime_error(file.path() + ": no tensor '" + name + "'");
  const Shape& s = file.info(name).shape;
  if (s.size() != 4 || s[0] < 1 || s[1] != channels)
    throw std::runtime_error(file.path() + ": tensor '" + name + "' has shape " + shape_string(s) + ", expected [B, " +
                             std::to_string(channels) + ", H, W]");
  return file.read<float>(name, s);
}

}  // namespace

bool is_sd_vae_fixture(const io::SafeTensorsFile& file) { return file.has("enc.moments") || file.has("dec.sample"); }

std::map<std::string, std::vector<double>> compute_sd_vae_results(const io::SafeTensorsFile& file,
                                                                  const std::string& prefix) {
  const SdVaeConfig cfg = fixture_config(file);
  SdVae<CpuBackend<float>> vae(cfg);
  io::load_sd_vae_weights(vae, file, prefix, "metadata 'config'");
  const int64_t L = cfg.latent_channels, f = cfg.downsampling();

  const Tensor<float> x = input(file, "input.x", cfg.in_channels);
  const int64_t B = x.shape[0], H = x.shape[2], W = x.shape[3], h = H / f, w = W / f;
  const Tensor<float> eps = file.read<float>("input.eps", {B, L, h, w});
  const Tensor<float> z = input(file, "input.z", L);
  const int64_t latent = B * L * h * w;

  std::map<std::string, std::vector<double>> out;
  SdVaeCapture capture;
  vae.set_capture(&capture);
  std::vector<float> mean(latent), logvar(latent);
  vae.encode(x.data.data(), B, H, W, mean.data(), logvar.data());
  // The posterior as diffusers' DiagonalGaussianDistribution computes it, in float.
  std::vector<float> stdev(latent), sample(latent);
  for (int64_t i = 0; i < latent; ++i) {
    stdev[i] = std::exp(0.5f * logvar[i]);
    sample[i] = mean[i] + stdev[i] * eps.data[i];
  }
  out["enc.mean"].assign(mean.begin(), mean.end());
  out["enc.logvar"].assign(logvar.begin(), logvar.end());
  out["enc.std"].assign(stdev.begin(), stdev.end());
  out["enc.sample"].assign(sample.begin(), sample.end());
  auto& scaled = out["enc.latent_scaled"];
  for (float s : sample) scaled.push_back(static_cast<double>(s * static_cast<float>(cfg.scaling_factor)));

  // aux.dec.* follow the decoder's path on input.z (dec.sample); dec.roundtrip decodes our own sample.
  const int64_t zh = z.shape[2], zw = z.shape[3], Bz = z.shape[0];
  std::vector<float> image(Bz * cfg.out_channels * zh * f * zw * f);
  vae.decode(z.data.data(), Bz, zh, zw, image.data());
  out["dec.sample"].assign(image.begin(), image.end());
  vae.set_capture(nullptr);
  std::vector<float> roundtrip(B * cfg.out_channels * H * W);
  vae.decode(sample.data(), B, h, w, roundtrip.data());
  out["dec.roundtrip"].assign(roundtrip.begin(), roundtrip.end());

  for (const auto& [module, name] : fixture_names(cfg.num_blocks())) {
    auto it = capture.find(module);
    if (it == capture.end()) throw std::logic_error("SdVae recorded no '" + module + "'");
    out[name] = std::move(it->second);
  }
  return out;
}

Report check_sd_vae_file(const std::string& path) {
  const io::SafeTensorsFile file = io::SafeTensorsFile::open(path);
  Report report;
  report.file = path;
  if (file.metadata().count("description")) report.description = file.metadata().at("description");
  const auto ours = compute_sd_vae_results(file, "param.");
  for (const std::string& name : file.names()) {  // the fixture's order: enc.*, dec.*, aux.*
    const auto it = ours.find(name);
    if (it == ours.end()) continue;
    const std::vector<double>& values = it->second;
    const Tensor<double> ref = file.read<double>(name);
    if (ref.data.size() != values.size())
      throw std::runtime_error(path + ": tensor '" + name + "' has shape " + shape_string(ref.shape) + " (" +
                               std::to_string(ref.data.size()) + " values), the VAE computed " +
                               std::to_string(values.size()));
    Accumulator a(name, name.starts_with("enc.") ? kTolVaeEncoder : kTolVaeDecoder, "rel");
    a.add(name, values, ref);
    report.groups.push_back(a.r);
  }
  // The LDM names must give the very same model: same values, same code path, hence the same bits.
  if (file.has("ldm.encoder.conv_in.weight")) {
    const auto ldm = compute_sd_vae_results(file, "ldm.");
    GroupResult g;
    g.group = "ldm.* names = param.* names";
    g.metric = "abs";
    g.tolerance = 0;
    for (const auto& [name, values] : ours) {
      const std::vector<double>& other = ldm.at(name);
      for (size_t i = 0; i < values.size(); ++i) {
        const double d = std::abs(values[i] - other[i]);
        if (!std::isnan(g.max_abs) && (std::isnan(d) || d > g.max_abs)) {  // a NaN wins and stays
          g.max_abs = d;
          g.worst = name;
        }
      }
      ++g.tensors;
    }
    report.groups.push_back(g);
  }
  return report;
}

}  // namespace starflow::core::golden
