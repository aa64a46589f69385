// The T5 encoder (core/models/t5_encoder.h) beyond the golden check (tests/golden/test_t5_golden.cpp): the
// padding-skipping path against the full-length one, sharded F32/F16/BF16 checkpoints without
// encoder.embed_tokens.weight, the configurations the fixture does not cover (ungated relu, exact GELU, an
// attention width ≠ d_model) against a naive double implementation written from README_TEXT_AND_VAE §3.2,
// loading errors, and the memory a load takes beside a decoder in the same file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/io/float16.h"
#include "core/io/safetensors.h"
#include "core/io/sharded_safetensors.h"
#include "core/models/t5_encoder.h"
#include "core/models/t5_position_bias.h"
#include "tests/golden/golden_fixtures.h"

using namespace starflow::core;
namespace fs = std::filesystem;

namespace {

std::string fixture() { return starflow::testing::golden_fixture("t5_tiny_encoder.safetensors"); }

std::vector<int64_t> read_i64(const io::SafeTensorsFile& file, const std::string& name) {
  std::vector<int64_t> out(static_cast<size_t>(numel(file.info(name).shape)));
  std::memcpy(out.data(), file.raw(name).data(), out.size() * sizeof(int64_t));
  return out;
}

T5Config fixture_config(const io::SafeTensorsFile& file) {
  return T5Config::from_json(file.metadata_value("config"), file.path());
}

double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return diff / std::max(scale, 1e-30);
}

class T5EncoderFiles : public testing::Test {
 protected:
  void SetUp() override {
    const auto* test = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(testing::TempDir()) / ("starflow_t5_" + std::string(test->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// The fixture's encoder as a two-shard checkpoint in `dtype` ("F32", "F16" or "BF16") with only shared.weight for
// the embedding (as safetensors conversions keep it) and decoder tensors beside it; returns the folder.
struct ShardWriter {
  std::vector<std::vector<uint8_t>> storage;
  std::vector<io::TensorToWrite> shard[2];
  nlohmann::json weight_map = nlohmann::json::object();
  void add(int s, const std::string& name, const std::string& dtype, const Shape& shape, const std::vector<float>& v) {
    std::vector<uint8_t>& bytes = storage.emplace_back();
    if (dtype == "F32") {
      bytes.resize(v.size() * 4);
      std::memcpy(bytes.data(), v.data(), bytes.size());
    } else {
      bytes.resize(v.size() * 2);
      for (size_t i = 0; i < v.size(); ++i) {
        const uint16_t h = dtype == "F16" ? io::float_to_half_bits(v[i]) : io::float_to_bfloat16_bits(v[i]);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
    }
    shard[s].push_back({name, dtype, shape, bytes.data(), bytes.size()});
    weight_map[name] = "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
  }
  void write(const fs::path& dir) {
    storage.reserve(storage.size());
    for (int s = 0; s < 2; ++s)
      io::write_safetensors((dir / ("model-0000" + std::to_string(s + 1) + "-of-00002.safetensors")).string(), shard[s]);
    std::ofstream(dir / "model.safetensors.index.json") << nlohmann::json{{"metadata", {{"total_size", 0}}},
                                                                          {"weight_map", weight_map}}.dump();
  }
};

void write_fixture_shards(const io::SafeTensorsFile& file, const fs::path& dir, const std::string& dtype_a,
                          const std::string& dtype_b) {
  ShardWriter w;
  w.storage.reserve(64);  // TensorToWrite keeps pointers into storage
  for (const std::string& name : file.names()) {
    if (name.rfind("param.", 0) != 0 || name == "param.encoder.embed_tokens.weight") continue;
    const std::string upstream = name.substr(6);
    const bool first = upstream == "shared.weight" || upstream.rfind("encoder.block.0.", 0) == 0;
    const Shape shape = file.info(name).shape;
    w.add(first ? 0 : 1, upstream, first ? dtype_a : dtype_b, shape, file.read<float>(name).data);
  }
  // A decoder beside the encoder, as in T5ForConditionalGeneration's files: never read.
  w.add(1, "decoder.block.0.layer.0.SelfAttention.q.weight", "F32", {64, 64}, std::vector<float>(64 * 64, 1.f));
  w.add(0, "lm_head.weight", "F32", {384, 64}, std::vector<float>(384 * 64, 2.f));
  w.write(dir);
}

// `value` rounded through a 16-bit dtype (what loading an F16/BF16 tensor gives).
float rounded(float value, const std::string& dtype) {
  if (dtype == "F16") return io::half_bits_to_float(io::float_to_half_bits(value));
  if (dtype == "BF16") return io::bfloat16_bits_to_float(io::float_to_bfloat16_bits(value));
  return value;
}

struct FixtureInputs {
  int64_t B = 0, L = 0;
  std::vector<int64_t> ids, mask;
};

FixtureInputs fixture_inputs(const io::SafeTensorsFile& file) {
  FixtureInputs in;
  in.B = file.info("input.input_ids").shape[0];
  in.L = file.info("input.input_ids").shape[1];
  in.ids = read_i64(file, "input.input_ids");
  in.mask = read_i64(file, "input.attention_mask");
  return in;
}

std::vector<float> run_masked(T5EncoderCpu<float>& encoder, const FixtureInputs& in) {
  std::vector<float> out(static_cast<size_t>(in.B * in.L * encoder.config().d_model));
  encoder.forward_masked(in.ids.data(), in.mask.data(), in.B, in.L, out.data());
  return out;
}

}  // namespace

// The double model on the fixture: the float64 reference to storage rounding (the float model's own check is the
// golden test).
TEST(T5Encoder, DoubleModelMatchesTheFloat64Reference) {
  const io::SafeTensorsFile file = io::SafeTensorsFile::open(fixture());
  T5EncoderCpu<double> encoder(fixture_config(file));
  encoder.load_weights(io::ShardedSafeTensors::open(fixture()), "param.");
  const FixtureInputs in = fixture_inputs(file);
  std::vector<double> out(static_cast<size_t>(in.B * in.L * 64));
  T5EncoderTrace trace;
  encoder.forward_masked(in.ids.data(), in.mask.data(), in.B, in.L, out.data(), &trace);
  const Tensor<double> ref = file.read<double>("out.masked_hidden_state");
  double diff = 0, scale = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    diff = std::max(diff, std::fabs(out[i] - ref.data[i]));
    scale = std::max(scale, std::fabs(ref.data[i]));
  }
  EXPECT_LT(diff / scale, 2e-7) << "beyond F32 storage rounding of the reference";
  EXPECT_EQ(trace.attn_probs.size(), 3u);
}

// encode() runs each row at its own length; its valid positions equal forward_masked's (upstream's full-length
// computation, padded keys masked), its padded ones are exactly 0, and splitting the rows into passes changes
// nothing.
TEST(T5Encoder, PaddingSkippedEqualsTheFullLengthComputation) {
  const io::SafeTensorsFile file = io::SafeTensorsFile::open(fixture());
  T5EncoderCpu<float> encoder(fixture_config(file));
  encoder.load_weights(io::ShardedSafeTensors::open(fixture()), "param.");
  const int64_t N = 9, L = 20, D = 64;
  const std::vector<int64_t> lengths = {7, 20, 1, 13, 7, 0, 20, 3, 7};  // repeats, full rows, a length-0 row
  std::mt19937_64 rng(5);
  std::vector<int64_t> ids(N * L, 0), mask(N * L, 0);
  for (int64_t r = 0; r < N; ++r)
    for (int64_t t = 0; t < lengths[r]; ++t) {
      ids[r * L + t] = t + 1 == lengths[r] ? 1 : static_cast<int64_t>(3 + rng() % 381);
      mask[r * L + t] = 1;
    }
  std::vector<float> full(N * L * D), skipped(N * L * D, 7.f), passes(N * L * D, 7.f);
  encoder.forward_masked(ids.data(), mask.data(), N, L, full.data());
  encoder.encode(ids.data(), lengths.data(), N, L, skipped.data());
  encoder.set_pass_elements(1);  // one row per pass
  encoder.encode(ids.data(), lengths.data(), N, L, passes.data());
  int64_t identical = 0, valid = 0;
  for (int64_t r = 0; r < N; ++r)
    for (int64_t t = 0; t < L; ++t)
      for (int64_t j = 0; j < D; ++j) {
        const size_t i = static_cast<size_t>((r * L + t) * D + j);
        if (t >= lengths[r]) {
          ASSERT_EQ(skipped[i], 0.f) << r << "," << t;
          ASSERT_EQ(full[i], 0.f);
        } else {
          ++valid;
          identical += skipped[i] == full[i];
        }
      }
  // Equal up to the summation order of the shorter attention sums (the padded keys' probabilities are exact 0).
  EXPECT_LT(max_rel(skipped, full), 1e-6);
  // One row per pass: the same values up to the GEMM's blocking for another row count (the rows of a pass share
  // one matrix product, so bits may depend on the pass, as PyTorch's depend on the batch).
  EXPECT_LT(max_rel(passes, skipped), 1e-6);
  for (int64_t r = 0; r < N; ++r)
    for (int64_t i = lengths[r] * D; i < L * D; ++i) ASSERT_EQ(passes[r * L * D + i], 0.f) << r;
  std::cout << "padding skipped vs full length: max rel " << max_rel(skipped, full) << ", " << identical << " of "
            << valid << " valid values bit-identical\n";
}

// An F32 two-shard checkpoint without encoder.embed_tokens.weight gives the single-file results bit for bit; F16
// and BF16 shards give those of the F32 weights rounded to the same dtype, bit for bit, and the fixture's results
// within that rounding.
TEST_F(T5EncoderFiles, ShardedCheckpointsInAnyFloatDtype) {
  const io::SafeTensorsFile file = io::SafeTensorsFile::open(fixture());
  const T5Config cfg = fixture_config(file);
  const FixtureInputs in = fixture_inputs(file);
  T5EncoderCpu<float> single(cfg);
  single.load_weights(io::ShardedSafeTensors::open(fixture()), "param.");
  const std::vector<float> reference = run_masked(single, in);
  const std::vector<float> fixture_out = file.read<float>("out.masked_hidden_state").data;

  const std::pair<std::string, std::string> dtypes[] = {{"F32", "F32"}, {"F16", "BF16"}, {"BF16", "F16"}};
  for (const auto& [a, b] : dtypes) {
    const fs::path dir = dir_ / (a + "_" + b);
    fs::create_directories(dir);
    write_fixture_shards(file, dir, a, b);
    std::ofstream(dir / "config.json") << file.metadata_value("config");
    T5EncoderCpu<float> sharded = load_t5_encoder<CpuBackend<float>>(dir.string());
    const std::vector<float> out = run_masked(sharded, in);

    // The same weights rounded in memory: shard 0 holds the embedding and block 0.
    T5EncoderCpu<float> rounded_model(cfg);
    rounded_model.load_weights(io::ShardedSafeTensors::open(fixture()), "param.");
    for (const ParameterView& v : rounded_model.layout().views()) {
      const bool first = v.name == "encoder.embed_tokens.weight" || v.name.rfind("encoder.block.0.", 0) == 0;
      float* p = rounded_model.parameters().data() + v.offset;
      for (int64_t i = 0; i < v.size; ++i) p[i] = rounded(p[i], first ? a : b);
    }
    EXPECT_EQ(out, run_masked(rounded_model, in)) << a << "/" << b;
    if (a == "F32") {
      EXPECT_EQ(out, reference);
    } else {
      EXPECT_LT(max_rel(out, fixture_out), 3e-2) << a << "/" << b;  // bf16 keeps 8 bits
    }
  }
}

TEST_F(T5EncoderFiles, LoadingErrorsNameTheFileAndTheTensor) {
  const io::SafeTensorsFile file = io::SafeTensorsFile::open(fixture());
  const T5Config cfg = fixture_config(file);
  const std::vector<float> w(64 * 64, 0.5f);
  const std::string path = (dir_ / "model.safetensors").string();
  auto expect = [&](const std::vector<std::string>& phrases) {
    T5EncoderCpu<float> encoder(cfg);
    try {
      encoder.load_weights(io::ShardedSafeTensors::open(dir_.string()));
      ADD_FAILURE() << "no error";
    } catch (const std::runtime_error& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
      for (const std::string& phrase : phrases) EXPECT_NE(message.find(phrase), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  };
  io::write_safetensors(path, {{"encoder.block.0.layer.0.SelfAttention.q.weight", "F32", {64, 64}, w.data(), w.size() * 4}});
  expect({"'encoder.embed_tokens.weight'", "'shared.weight'"});
  const std::vector<float> table(384 * 64, 0.f);
  io::write_safetensors(path, {{"shared.weight", "F32", {384, 64}, table.data(), table.size() * 4},
                               {"encoder.block.0.layer.0.SelfAttention.q.weight", "F32", {4096}, w.data(), w.size() * 4}});
  expect({"'encoder.block.0.layer.0.SelfAttention.q.weight'", "[4096]", "expected [64, 64]"});
  io::write_safetensors(path, {{"shared.weight", "F32", {384, 64}, table.data(), table.size() * 4},
                               {"encoder.block.0.layer.0.SelfAttention.q.weight", "F32", {64, 64}, w.data(), w.size() * 4}});
  expect({"'encoder.block.0.layer.0.SelfAttention.k.weight'"});

  T5EncoderCpu<float> encoder(cfg);
  const std::vector<int64_t> bad = {1, 384}, lengths = {2};
  std::vector<float> out(2 * 64);
  EXPECT_THROW(encoder.encode(bad.data(), lengths.data(), 1, 2, out.data()), std::invalid_argument);
  const std::vector<int64_t> ok = {1, 0}, too_long = {3};
  EXPECT_THROW(encoder.encode(ok.data(), too_long.data(), 1, 2, out.data()), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------------------
// Configurations the fixture does not cover, against a direct transcription of README §3.2 in double.

namespace {

double act(double x, Activation a) {
  switch (a) {
    case Activation::kGeluTanh: return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case Activation::kGeluErf: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case Activation::kRelu: return std::max(x, 0.0);
  }
  return x;
}

std::vector<double> naive_encoder(const T5EncoderCpu<double>& m, const std::vector<int64_t>& ids,
                                  const std::vector<int64_t>& mask, int64_t B, int64_t L) {
  const T5Config& c = m.config();
  const int64_t D = c.d_model, H = c.num_heads, dk = c.d_kv, I = c.inner_dim(), F = c.d_ff;
  auto W = [&](const std::string& name) { return m.parameters().data() + m.layout().at(name).offset; };
  auto linear = [](const std::vector<double>& x, const double* w, int64_t rows, int64_t in, int64_t out) {
    std::vector<double> y(rows * out, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) y[r * out + o] += x[r * in + i] * w[o * in + i];
    return y;
  };
  auto rms = [&](const std::vector<double>& x, const double* w) {
    std::vector<double> y(x.size());
    for (int64_t r = 0; r < B * L; ++r) {
      double s = 0;
      for (int64_t j = 0; j < D; ++j) s += x[r * D + j] * x[r * D + j];
      const double rr = 1 / std::sqrt(s / D + c.layer_norm_epsilon);
      for (int64_t j = 0; j < D; ++j) y[r * D + j] = w[j] * (x[r * D + j] * rr);
    }
    return y;
  };
  std::vector<double> h(B * L * D);
  for (int64_t t = 0; t < B * L; ++t)
    for (int64_t j = 0; j < D; ++j) h[t * D + j] = W("encoder.embed_tokens.weight")[ids[t] * D + j];
  const double* rel = W("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
  for (int64_t k = 0; k < c.num_layers; ++k) {
    const std::string p = "encoder.block." + std::to_string(k) + ".layer.";
    const std::vector<double> x = rms(h, W(p + "0.layer_norm.weight"));
    const auto q = linear(x, W(p + "0.SelfAttention.q.weight"), B * L, D, I);
    const auto kk = linear(x, W(p + "0.SelfAttention.k.weight"), B * L, D, I);
    const auto v = linear(x, W(p + "0.SelfAttention.v.weight"), B * L, D, I);
    std::vector<double> a(B * L * I, 0.0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t hh = 0; hh < H; ++hh)
        for (int64_t i = 0; i < L; ++i) {
          std::vector<double> s(L);
          double mx = -std::numeric_limits<double>::infinity(), sum = 0;
          for (int64_t j = 0; j < L; ++j) {
            double dot = 0;
            for (int64_t d = 0; d < dk; ++d) dot += q[(b * L + i) * I + hh * dk + d] * kk[(b * L + j) * I + hh * dk + d];
            s[j] = dot + rel[t5_relative_bucket(j - i, c.relative_attention_num_buckets, c.relative_attention_max_distance) * H + hh] +
                   (mask[b * L + j] ? 0.0 : double(std::numeric_limits<float>::lowest()));
            mx = std::max(mx, s[j]);
          }
          for (double& e : s) sum += (e = std::exp(e - mx));
          for (int64_t j = 0; j < L; ++j)
            for (int64_t d = 0; d < dk; ++d) a[(b * L + i) * I + hh * dk + d] += s[j] / sum * v[(b * L + j) * I + hh * dk + d];
        }
    const auto ao = linear(a, W(p + "0.SelfAttention.o.weight"), B * L, I, D);
    for (size_t i = 0; i < h.size(); ++i) h[i] += ao[i];
    const std::vector<double> x1 = rms(h, W(p + "1.layer_norm.weight"));
    std::vector<double> f;
    if (c.gated) {
      f = linear(x1, W(p + "1.DenseReluDense.wi_0.weight"), B * L, D, F);
      const auto g = linear(x1, W(p + "1.DenseReluDense.wi_1.weight"), B * L, D, F);
      for (size_t i = 0; i < f.size(); ++i) f[i] = act(f[i], c.activation) * g[i];
    } else {
      f = linear(x1, W(p + "1.DenseReluDense.wi.weight"), B * L, D, F);
      for (double& e : f) e = act(e, c.activation);
    }
    const auto fo = linear(f, W(p + "1.DenseReluDense.wo.weight"), B * L, F, D);
    for (size_t i = 0; i < h.size(); ++i) h[i] += fo[i];
  }
  std::vector<double> out = rms(h, W("encoder.final_layer_norm.weight"));
  for (int64_t t = 0; t < B * L; ++t)
    if (!mask[t])
      for (int64_t j = 0; j < D; ++j) out[t * D + j] = 0;
  return out;
}

}  // namespace

TEST(T5Encoder, ConfigurationsBeyondTheFixtureMatchANaiveImplementation) {
  // Ungated relu (the original T5), gated exact GELU (pre-2023 flan-t5 configs), gated gelu_new; attention width
  // 3·8 = 24 ≠ d_model 20; 8 buckets, max distance 12 (every bucket regime within L = 16).
  const char* base = R"({"vocab_size": 50, "d_model": 20, "d_kv": 8, "d_ff": 28, "num_heads": 3, "num_layers": 2,
      "relative_attention_num_buckets": 8, "relative_attention_max_distance": 12, "feed_forward_proj": "%s"})";
  for (const char* proj : {"relu", "gated-gelu\", \"dense_act_fn\": \"gelu", "gated-gelu"}) {
    char json[512];
    std::snprintf(json, sizeof json, base, proj);
    const T5Config cfg = T5Config::from_json(json, "test config");
    T5EncoderCpu<double> model(cfg);
    std::mt19937_64 rng(11);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (const ParameterView& v : model.layout().views()) {
      const double scale = v.shape.size() == 2 && v.name.find("relative") == std::string::npos && v.name.find("embed") == std::string::npos
                               ? 1.0 / std::sqrt(double(v.shape[1])) : 1.0;
      double* p = model.parameters().data() + v.offset;
      for (int64_t i = 0; i < v.size; ++i) p[i] = v.shape.size() == 1 ? 1.0 + 0.2 * normal(rng) : scale * normal(rng);
    }
    const int64_t B = 3, L = 16;
    const std::vector<int64_t> lengths = {16, 5, 1};
    std::vector<int64_t> ids(B * L, 0), mask(B * L, 0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < lengths[b]; ++t) {
        ids[b * L + t] = static_cast<int64_t>(rng() % 50);
        mask[b * L + t] = 1;
      }
    const std::vector<double> want = naive_encoder(model, ids, mask, B, L);
    std::vector<double> masked(B * L * 20), skipped(B * L * 20);
    model.forward_masked(ids.data(), mask.data(), B, L, masked.data());
    model.encode(ids.data(), lengths.data(), B, L, skipped.data());
    double diff_masked = 0, diff_skipped = 0, scale = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      diff_masked = std::max(diff_masked, std::fabs(masked[i] - want[i]));
      diff_skipped = std::max(diff_skipped, std::fabs(skipped[i] - want[i]));
      scale = std::max(scale, std::fabs(want[i]));
    }
    EXPECT_LT(diff_masked / scale, 1e-12) << proj;
    EXPECT_LT(diff_skipped / scale, 1e-12) << proj;
  }
}

// Loading keeps the encoder's weights and little else: the decoder in the same file is never read and a tensor's
// file pages are handed back once converted, so the peak resident memory of a load is the weights plus a margin.
// (flan-t5-xl: 4.9 GB of encoder weights next to 6.5 GB of decoder and lm_head in the same shards.)
TEST_F(T5EncoderFiles, LoadingPeaksAtTheWeightsAndNeverReadsTheDecoder) {
  const char* json = R"({"vocab_size": 4096, "d_model": 512, "d_kv": 64, "d_ff": 1024, "num_heads": 8, "num_layers": 4,
      "feed_forward_proj": "gated-gelu"})";
  const T5Config cfg = T5Config::from_json(json, "config.json");
  std::ofstream(dir_ / "config.json") << json;
  {
    ShardWriter w;
    w.storage.reserve(64);
    T5EncoderCpu<float> donor(cfg);
    for (const ParameterView& v : donor.layout().views()) {
      const std::string name = v.name == "encoder.embed_tokens.weight" ? "shared.weight" : v.name;
      w.add(v.name.rfind("encoder.block.3", 0) == 0 ? 1 : 0, name, "F32", v.shape, std::vector<float>(v.size, 0.25f));
    }
    // A decoder four times the encoder's size, interleaved in both shards.
    for (int k = 0; k < 16; ++k)
      w.add(k % 2, "decoder.block." + std::to_string(k) + ".layer.1.DenseReluDense.wi_0.weight", "F32", {1024, 2048},
            std::vector<float>(1024 * 2048, 1.f));
    w.write(dir_);
  }
  const int64_t weights_kb = T5EncoderCpu<float>(cfg).layout().total_size() * 4 / 1024;
  auto status_kb = [](const std::string& key) {
    std::ifstream status("/proc/self/status");
    std::string k;
    int64_t v = -1;
    while (status >> k) {
      if (k == key + ":") {
        status >> v;
        break;
      }
      status.ignore(1 << 20, '\n');
    }
    return v;
  };
  if (!std::ofstream("/proc/self/clear_refs").good()) GTEST_SKIP() << "cannot reset the peak RSS here";
  std::ofstream("/proc/self/clear_refs") << "5";  // VmHWM := VmRSS
  const int64_t before = status_kb("VmRSS");
  T5EncoderCpu<float> encoder = load_t5_encoder<CpuBackend<float>>(dir_.string());
  const int64_t peak = status_kb("VmHWM") - before;
  EXPECT_EQ(encoder.parameters()[encoder.layout().at("encoder.final_layer_norm.weight").offset], 0.25f);
  std::cout << "encoder weights " << weights_kb / 1024 << " MiB, load peak " << peak / 1024 << " MiB above the start ("
            << "decoder " << 16 * 8 << " MiB in the same files)\n";
  EXPECT_LT(peak, weights_kb + 16 * 1024);
}
