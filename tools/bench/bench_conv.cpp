// `starflow bench conv`: conv2d forward throughput (GFLOP/s) at the SD VAE's layer shapes, ours against PyTorch
// (tools/bench/torch_conv.py under /usr/bin/python3, run after ours in the same command). These convolutions are
// nearly all of the VAE's cost when preprocessing images into latents.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/ops/cpu/conv2d.h"
#include "tools/bench/bench_stats.h"
#include "tools/cpu_threads.h"
#include "tools/options.h"

namespace starflow::tools {

namespace {

struct ConvCase {
  std::string label;
  core::Conv2dShape s;
  double flops() const {
    return 2.0 * double(s.batch) * double(s.out_channels) * double(s.out_height()) * double(s.out_width()) *
           double(s.in_channels) * double(s.kernel * s.kernel);
  }
};

// The distinct convolutions of sd-vae-ft-ema on an image of `size` pixels (encoder and decoder), widest first.
std::vector<ConvCase> vae_cases(int64_t B, int64_t size) {
  auto conv = [&](int64_t cin, int64_t cout, int64_t res, int64_t k) {
    return core::Conv2dShape{B, cin, res, res, cout, k, 1, k / 2};
  };
  core::Conv2dShape down{B, 128, size, size, 128, 3, 2, 0};
  down.pad_bottom = 1;
  down.pad_right = 1;
  const int64_t f = size / 8;
  return {
      {"512->512 3x3 at 1/8", conv(512, 512, f, 3)},
      {"512->512 3x3 at 1/4", conv(512, 512, 2 * f, 3)},
      {"256->256 3x3 at 1/2", conv(256, 256, 4 * f, 3)},
      {"128->128 3x3 at 1/1", conv(128, 128, size, 3)},
      {"128->128 3x3 s2 pad(0,1,0,1)", down},
      {"256->128 1x1 at 1/1", conv(256, 128, size, 1)},
      {"3->128 3x3 (conv_in)", conv(3, 128, size, 3)},
      {"128->3 3x3 (conv_out)", conv(128, 3, size, 3)},
  };
}

double median_ms(const ConvCase& c, int runs) {
  const core::Conv2dShape& s = c.s;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> in(s.batch * s.in_channels * s.height * s.width), weight(s.weight_size()), bias(s.out_channels);
  for (auto* v : {&in, &weight, &bias})
    for (float& x : *v) x = dist(rng) * 0.1f;
  std::vector<float> out(s.batch * s.out_channels * s.out_height() * s.out_width());
  core::cpu::conv2d_forward(out.data(), in.data(), weight.data(), bias.data(), s);
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    core::cpu::conv2d_forward(out.data(), in.data(), weight.data(), bias.data(), s);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(ms);
}

// The reference's median ms per case, in order; empty (with a message on stderr) when it cannot run.
std::vector<double> torch_ms(const std::vector<ConvCase>& cases, int threads, int runs) {
  std::string json = "[";
  for (const ConvCase& c : cases) {
    const core::Conv2dShape& s = c.s;
    if (json.size() > 1) json += ',';
    json += '[';
    const int64_t fields[] = {s.batch,  s.in_channels,  s.height,        s.width,          s.out_channels,    s.kernel,
                              s.stride, s.padding_top(), s.padding_left(), s.padding_bottom(), s.padding_right()};
    for (size_t i = 0; i < std::size(fields); ++i) {
      if (i) json += ',';
      json += std::to_string(fields[i]);
    }
    json += ']';
  }
  json += "]";
  std::string command = "/usr/bin/python3 '";
  command += STARFLOW_SOURCE_DIR;
  command += "/tools/bench/torch_conv.py' ";
  command += std::to_string(threads) + " " + std::to_string(runs) + " '" + json + "'";
  std::vector<double> result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  double ms = 0;
  while (std::fscanf(pipe, "%lf", &ms) == 1) result.push_back(ms);
  const int status = pclose(pipe);
  if (status != 0 || result.size() != cases.size()) {
    std::fprintf(stderr, "bench conv: the PyTorch reference failed (%s)\n", command.c_str());
    result.clear();
  }
  return result;
}

}  // namespace

int bench_conv(int argc, char** argv) {
  int threads = omp_get_num_procs(), runs = 5, batch = 1, size = 256, torch = 1;
  const Option table[] = {
      int_option("--threads", threads, 1, "OpenMP threads, ours and PyTorch's (default: every core)"),
      int_option("--runs", runs, 1, "timed runs per shape; the median is reported (default 5)"),
      int_option("--batch", batch, 1, "images per call (default 1)"),
      int_option("--size", size, 8, "image side in pixels, a multiple of 8 (default 256)"),
      int_option("--torch", torch, 0, "1: also time PyTorch (/usr/bin/python3), 0: ours only (default 1)")};
  const int parsed = parse_options("bench conv", "conv2d forward at the SD VAE's shapes against PyTorch.", table, argc,
                                   argv);
  if (parsed >= 0) return parsed;
  set_cpu_threads(threads);
  const std::vector<ConvCase> cases = vae_cases(batch, size / 8 * 8);
  std::vector<double> ours;
  for (const ConvCase& c : cases) ours.push_back(median_ms(c, runs));
  const std::vector<double> ref = torch ? torch_ms(cases, threads, runs) : std::vector<double>{};
  std::printf("conv2d forward, image %dx%d, batch %d, %d thread(s), median of %d runs\n", size / 8 * 8, size / 8 * 8,
              batch, threads, runs);
  std::printf("%-30s %10s %10s %10s %10s %8s\n", "shape", "ours ms", "GFLOP/s", "torch ms", "GFLOP/s", "speed");
  for (size_t i = 0; i < cases.size(); ++i) {
    const double gflop = cases[i].flops() * 1e-9;
    if (ref.empty()) {
      std::printf("%-30s %10.2f %10.1f\n", cases[i].label.c_str(), ours[i], gflop / ours[i] * 1e3);
    } else {
      std::printf("%-30s %10.2f %10.1f %10.2f %10.1f %7.2fx\n", cases[i].label.c_str(), ours[i],
                  gflop / ours[i] * 1e3, ref[i], gflop / ref[i] * 1e3, ref[i] / ours[i]);
    }
  }
  return 0;
}

}  // namespace starflow::tools
