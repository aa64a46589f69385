// `starflow bench encoders`: the text-to-image stack's frozen models at their real sizes, random weights:
// google/flan-t5-xl's encoder (1.2 B parameters) on a batch of captions and stabilityai/sd-vae-ft-ema's encode and
// decode at 256×256, against the same models written in PyTorch (tools/bench/torch_encoders.py, Debian's
// python3-torch, run after ours in the same command with the same threads). T5 is timed three ways: ours at the
// captions' real lengths (padding is never computed), ours padded to the full text length, and PyTorch padded
// with an attention mask as the official pipeline runs it. Each figure is the median of --runs timed calls after
// an untimed one, with its GFLOP/s and its share of the FMA peak measured in the same run; T5's memory is the
// process's peak resident set above what it held before the model was built.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/backends/cpu/cpu_backend.h"
#include "core/models/sd_vae.h"
#include "core/models/t5_encoder.h"
#include "tools/bench/bench_stats.h"
#include "tools/bench/fma_peak.h"
#include "tools/cpu_threads.h"
#include "tools/options.h"

namespace starflow::tools {

namespace {

// google/flan-t5-xl's config.json, the keys the encoder reads (README_TEXT_AND_VAE §6.1).
constexpr const char* kFlanT5Xl = R"({"d_model": 2048, "d_kv": 64, "d_ff": 5120, "num_heads": 32, "num_layers": 24,
  "vocab_size": 32128, "feed_forward_proj": "gated-gelu", "relative_attention_num_buckets": 32,
  "relative_attention_max_distance": 128, "layer_norm_epsilon": 1e-06})";

// Token counts (EOS included) of captions of the kinds text-to-image sets hold, after T5's tokenizer: short
// alt-texts, COCO-style sentences and longer re-captions; mean 24.4 of the 128 the pipeline pads to.
constexpr int64_t kCaptionTokens[] = {14, 22, 9, 31, 18, 43, 12, 26, 35, 16, 58, 20, 11, 29, 24, 23};

// Peak and current resident set of this process in MiB (/proc/self/status VmHWM, VmRSS).
double status_mib(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(std::string(key).size())) / 1024.0;
  return 0;
}

// Deterministic values of a realistic scale: uniform in ±1/√fan_in for matrices and kernels (fan_in: the
// product of every axis but the first), 1 for norm gains, 0 for biases, ±1 for the token embedding.
void randomise(float* params, const core::ParameterLayout& layout, const std::string& embedding) {
  for (const core::ParameterView& v : layout.views()) {
    float* p = params + v.offset;
    const bool bias = v.name.size() > 5 && v.name.compare(v.name.size() - 5, 5, ".bias") == 0;
    if (v.shape.size() < 2) {
      std::fill(p, p + v.size, bias ? 0.f : 1.f);
      continue;
    }
    const double fan_in = v.name == embedding ? 1.0 : double(v.size / v.shape[0]);
    const float scale = float(1.0 / std::sqrt(fan_in));
    const uint64_t seed = std::hash<std::string>{}(v.name);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < v.size; ++i) {
      uint64_t z = seed + uint64_t(i) * 0x9E3779B97F4A7C15ull;  // splitmix64
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      p[i] = scale * float(double(z >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    }
  }
}

double median_seconds(const std::function<void()>& call, int runs) {
  call();
  std::vector<double> s;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(s);
}

// Multiply-adds ×2 of T5's matrix products for rows of these lengths (linear layers and attention).
double t5_flops(const core::T5Config& c, const std::vector<int64_t>& lengths) {
  const double D = double(c.d_model), I = double(c.inner_dim()), F = double(c.d_ff);
  const double per_token = 2.0 * (4.0 * D * I + (c.gated ? 3.0 : 2.0) * D * F);
  double flops = 0;
  for (int64_t s : lengths) flops += double(c.num_layers) * (double(s) * per_token + 4.0 * double(s) * double(s) * I);
  return flops;
}

// Multiply-adds ×2 of the VAE's convolutions and attention, encoder or decoder, for one image of side `size`.
double vae_flops(const core::SdVaeConfig& c, int64_t size, bool encoder) {
  const auto& w = c.block_out_channels;
  const int64_t n = int64_t(w.size()), latent = c.latent_channels;
  auto conv = [](double cin, double cout, double k, double res) { return 2.0 * cin * cout * k * k * res * res; };
  auto resnet = [&](double cin, double cout, double res) {
    return conv(cin, cout, 3, res) + conv(cout, cout, 3, res) + (cin != cout ? conv(cin, cout, 1, res) : 0.0);
  };
  auto mid = [&](double ch, double res) {
    const double pixels = res * res;
    return 2 * resnet(ch, ch, res) + 4 * 2.0 * ch * ch * pixels + 2 * 2.0 * pixels * pixels * ch;
  };
  double f = 0, res = double(size);
  if (encoder) {
    f += conv(double(c.in_channels), double(w[0]), 3, res);
    double cin = double(w[0]);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < c.layers_per_block; ++j) f += resnet(j == 0 ? cin : double(w[i]), double(w[i]), res);
      cin = double(w[i]);
      if (i + 1 < n) f += conv(cin, cin, 3, res /= 2);
    }
    f += mid(cin, res) + conv(cin, 2.0 * double(latent), 3, res) + conv(2.0 * double(latent), 2.0 * double(latent), 1, res);
    return f;
  }
  res = double(size / c.downsampling());
  double cin = double(w[n - 1]);
  f += conv(double(latent), double(latent), 1, res) + conv(double(latent), cin, 3, res) + mid(cin, res);
  for (int64_t i = n - 1; i >= 0; --i) {
    for (int64_t j = 0; j <= c.layers_per_block; ++j) f += resnet(j == 0 ? cin : double(w[i]), double(w[i]), res);
    cin = double(w[i]);
    if (i > 0) f += conv(cin, cin, 3, res *= 2);
  }
  return f + conv(cin, double(c.out_channels), 3, res);
}

// The reference's figures by name ("t5", "vae_encode", "vae_decode", "peak_rss_mb"); empty when it cannot run.
std::map<std::string, double> torch_figures(const nlohmann::json& spec) {
  std::string command = "/usr/bin/python3 '";
  command += STARFLOW_SOURCE_DIR;
  command += "/tools/bench/torch_encoders.py' '" + spec.dump() + "'";
  std::map<std::string, double> out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return out;
  char name[64];
  double value = 0;
  while (std::fscanf(pipe, "%63s %lf", name, &value) == 2) out[name] = value;
  if (pclose(pipe) != 0) {
    std::fprintf(stderr, "bench encoders: the PyTorch reference failed (tools/bench/torch_encoders.py)\n");
    out.clear();
  }
  return out;
}

void row(const char* what, double seconds, double flops, double peak, double reference, const char* target) {
  const double gflops = flops / seconds * 1e-9;
  std::printf("  %-34s %9.3f s %8.1f GFLOP/s %5.1f%% of peak", what, seconds, gflops, peak > 0 ? 100 * gflops / peak : 0);
  if (reference > 0) std::printf("   %6.2fx PyTorch (target %s)", reference / seconds, target);
  std::printf("\n");
}

}  // namespace

int bench_encoders(int argc, char** argv) {
  int threads = omp_get_num_procs(), runs = 3, captions = 8, text_length = 128, size = 256, batch = 1, torch = 1;
  int t5 = 1, vae = 1;
  const Option table[] = {
      int_option("--threads", threads, 1, "OpenMP threads, ours and PyTorch's (default: every core)"),
      int_option("--runs", runs, 1, "timed calls per figure; the median is reported (default 3)"),
      int_option("--captions", captions, 1, "captions in T5's batch (default 8; lengths from a fixed realistic mix)"),
      int_option("--text-length", text_length, 1, "tokens the official pipeline pads to (default 128)"),
      int_option("--size", size, 8, "VAE image side in pixels (default 256)"),
      int_option("--batch", batch, 1, "VAE images per call (default 1)"),
      int_option("--t5", t5, 0, "1: time the T5 encoder (default 1)"),
      int_option("--vae", vae, 0, "1: time the VAE (default 1)"),
      int_option("--torch", torch, 0, "1: also time PyTorch (/usr/bin/python3), 0: ours only (default 1)")};
  const int parsed = parse_options("bench encoders",
                                   "flan-t5-xl and sd-vae-ft-ema at their real sizes (random weights) against PyTorch.",
                                   table, argc, argv);
  if (parsed >= 0) return parsed;
  set_cpu_threads(threads);
  const double peak = fma_peak_gflops(threads);
  std::printf("bench encoders: %d thread(s), median of %d runs after one untimed; %s FMA peak measured now: %.1f "
              "GFLOP/s\n",
              threads, runs, fma_peak_isa(), peak);

  nlohmann::json spec = {{"threads", threads}, {"runs", runs}, {"t5", nullptr}, {"vae", nullptr}};
  const core::T5Config t5_cfg = core::T5Config::from_json(kFlanT5Xl, "flan-t5-xl config");
  std::vector<int64_t> lengths;
  for (int i = 0; i < captions; ++i) lengths.push_back(std::min<int64_t>(kCaptionTokens[i % 16], text_length));
  double t5_real = 0, t5_padded = 0, t5_weights_mib = 0, t5_peak_mib = 0;
  if (t5) {
    const double before = status_mib("VmRSS:");
    core::T5Encoder<core::CpuBackend<float>> encoder(t5_cfg);
    randomise(encoder.parameters().data(), encoder.layout(), "encoder.embed_tokens.weight");
    t5_weights_mib = double(encoder.layout().total_size()) * 4 / (1 << 20);
    const int64_t N = captions, L = text_length;
    std::vector<int64_t> ids(N * L, 0), full(N, L);
    for (int64_t r = 0; r < N; ++r)
      for (int64_t t = 0; t < L; ++t) ids[r * L + t] = t + 1 == lengths[r] ? 1 : 2 + (r * 7919 + t * 104729) % 32000;
    std::vector<float> out(N * L * t5_cfg.d_model);
    t5_real = median_seconds([&] { encoder.encode(ids.data(), lengths.data(), N, L, out.data()); }, runs);
    t5_padded = median_seconds([&] { encoder.encode(ids.data(), full.data(), N, L, out.data()); }, runs);
    t5_peak_mib = status_mib("VmHWM:") - before;
    spec["t5"] = {{"config", nlohmann::json::parse(kFlanT5Xl)}, {"captions", N}, {"length", L}, {"lengths", lengths}};
  }
  const core::SdVaeConfig vae_cfg = core::SdVaeConfig::sd_vae_ft_ema();
  double enc = 0, dec = 0;
  if (vae) {
    core::SdVae<core::CpuBackend<float>> model(vae_cfg);
    randomise(model.parameters().data(), model.layout(), "");
    const int64_t s = size / vae_cfg.downsampling() * vae_cfg.downsampling(), l = s / vae_cfg.downsampling();
    std::vector<float> images(batch * 3 * s * s), mean(batch * vae_cfg.latent_channels * l * l), logvar(mean.size());
    for (size_t i = 0; i < images.size(); ++i) images[i] = float((i * 2654435761u) % 2001) / 1000.f - 1.f;
    enc = median_seconds([&] { model.encode(images.data(), batch, s, s, mean.data(), logvar.data()); }, runs);
    dec = median_seconds([&] { model.decode(mean.data(), batch, l, l, images.data()); }, runs);
    size = int(s);
    spec["vae"] = {{"config",
                    {{"in_channels", vae_cfg.in_channels},
                     {"out_channels", vae_cfg.out_channels},
                     {"latent_channels", vae_cfg.latent_channels},
                     {"block_out_channels", vae_cfg.block_out_channels},
                     {"layers_per_block", vae_cfg.layers_per_block},
                     {"norm_num_groups", vae_cfg.norm_num_groups}}},
                   {"size", size},
                   {"batch", batch}};
  }
  const std::map<std::string, double> ref = torch ? torch_figures(spec) : std::map<std::string, double>{};
  auto ref_of = [&](const char* k) { return ref.count(k) ? ref.at(k) : 0.0; };

  if (t5) {
    double tokens = 0;
    for (int64_t s : lengths) tokens += double(s);
    std::printf("flan-t5-xl encoder (%.2f B parameters, %.0f MiB in float32), %d captions of %.1f tokens on average, "
                "padded to %d\n",
                t5_weights_mib * (1 << 20) / 4 / 1e9, t5_weights_mib, captions, tokens / captions, text_length);
    row("ours, real lengths", t5_real, t5_flops(t5_cfg, lengths), peak, ref_of("t5"), ">= 3x");
    row("ours, padded", t5_padded, t5_flops(t5_cfg, std::vector<int64_t>(captions, text_length)), peak, ref_of("t5"),
        ">= 1.0x");
    if (ref_of("t5") > 0)
      row("PyTorch, padded + mask", ref_of("t5"), t5_flops(t5_cfg, std::vector<int64_t>(captions, text_length)), peak, 0,
          "");
    std::printf("  peak memory: %.0f MiB above the start = weights + %.0f MiB (target: weights + 1024)\n", t5_peak_mib,
                t5_peak_mib - t5_weights_mib);
  }
  if (vae) {
    std::printf("sd-vae-ft-ema, %d image(s) of %dx%d\n", batch, size, size);
    row("ours, encode", enc, batch * vae_flops(vae_cfg, size, true), peak, ref_of("vae_encode"), ">= 1.0x");
    row("ours, decode", dec, batch * vae_flops(vae_cfg, size, false), peak, ref_of("vae_decode"), ">= 1.0x");
    if (ref_of("vae_encode") > 0) {
      row("PyTorch, encode", ref_of("vae_encode"), batch * vae_flops(vae_cfg, size, true), peak, 0, "");
      row("PyTorch, decode", ref_of("vae_decode"), batch * vae_flops(vae_cfg, size, false), peak, 0, "");
    }
  }
  if (ref_of("peak_rss_mb") > 0) std::printf("PyTorch's peak resident memory: %.0f MiB\n", ref_of("peak_rss_mb"));
  return 0;
}

}  // namespace starflow::tools
