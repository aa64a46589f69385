// The T5 encoder on the CUDA backend against the golden fixture (upstream transformers in float64): upstream's
// masked full-length pass and the pipeline's padding-skipped encode(), within the fixture's float32 tolerance
// (README_TEXT_AND_VAE §7), and against the CPU encoder on the same weights. Skipped without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/backends/cuda/cuda_backend.h"
#include "core/io/sharded_safetensors.h"
#include "core/models/t5_encoder.h"
#include "tests/gpu/gpu_test_util.h"

namespace starflow::core::cuda {
namespace {

constexpr double kTolT5Hidden = 1e-5;  // README_TEXT_AND_VAE §7: hidden states, relative to max |ref|

std::vector<int64_t> read_i64(const io::SafeTensorsFile& file, const std::string& name) {
  std::vector<int64_t> out(static_cast<size_t>(numel(file.info(name).shape)));
  std::memcpy(out.data(), file.raw(name).data(), out.size() * sizeof(int64_t));
  return out;
}

// max |a − ref| / max |ref|
double max_rel(const std::vector<float>& a, const std::vector<double>& ref) {
  double d = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    d = std::max(d, std::abs(double(a[i]) - ref[i]));
    scale = std::max(scale, std::abs(ref[i]));
  }
  return d / scale;
}

TEST(CudaT5, MatchesTheFixtureAndTheCpu) {
  if (!g_no_gpu.empty()) GTEST_SKIP() << g_no_gpu;
  const std::string path = golden_dir() + "/t5_tiny_encoder.safetensors";
  const io::SafeTensorsFile file = io::SafeTensorsFile::open(path);
  const T5Config cfg = T5Config::from_json(file.metadata_value("config"), path);
  const Shape shape = file.info("input.input_ids").shape;
  const int64_t B = shape[0], L = shape[1], D = cfg.d_model, n = B * L * D;
  const std::vector<int64_t> ids = read_i64(file, "input.input_ids"), mask = read_i64(file, "input.attention_mask");
  const Tensor<double> ref = file.read<double>("out.masked_hidden_state", {B, L, D});
  std::vector<int64_t> lengths(static_cast<size_t>(B), 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < L; ++t) lengths[b] += mask[b * L + t] != 0;

  T5Encoder<CudaBackend<float>> gpu(cfg);
  gpu.load_weights(io::ShardedSafeTensors::open(path), "param.");
  T5Encoder<CpuBackend<float>> cpu(cfg);
  cpu.load_weights(io::ShardedSafeTensors::open(path), "param.");

  DeviceBuffer<float> out(static_cast<size_t>(n));
  std::vector<float> masked(n), skipped(n), on_cpu(n);
  gpu.forward_masked(ids.data(), mask.data(), B, L, out.data());
  gpu.backend().download(masked.data(), out.data(), n);
  gpu.encode(ids.data(), lengths.data(), B, L, out.data());
  gpu.backend().download(skipped.data(), out.data(), n);
  gpu.backend().synchronize();
  cpu.encode(ids.data(), lengths.data(), B, L, on_cpu.data());

  const double masked_rel = max_rel(masked, ref.data), skipped_rel = max_rel(skipped, ref.data);
  std::vector<double> cpu_ref(on_cpu.begin(), on_cpu.end());
  const double vs_cpu = max_rel(skipped, cpu_ref);
  std::printf("# CudaT5 masked %.3e, padding skipped %.3e (tolerance %.0e rel); against the CPU %.3e\n", masked_rel,
              skipped_rel, kTolT5Hidden, vs_cpu);
  EXPECT_LE(masked_rel, kTolT5Hidden);
  EXPECT_LE(skipped_rel, kTolT5Hidden);
  EXPECT_LE(vs_cpu, kTolT5Hidden);
  for (int64_t b = 0; b < B; ++b)  // padded positions are exact zeros
    for (int64_t t = lengths[b]; t < L; ++t)
      for (int64_t c = 0; c < D; ++c) ASSERT_EQ(skipped[(b * L + t) * D + c], 0.0f) << b << "," << t;
}

}  // namespace
}  // namespace starflow::core::cuda
