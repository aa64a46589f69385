// Sampling invariants on tiny double-precision models: the KV-cached reverse is the exact inverse of the
// parallel forward, Jacobi at a tight threshold equals sequential decoding, guidance with w = 0 is a no-op,
// and the denoising step is x − σ²·numel·∂loss/∂x.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <cstring>

#include "core/models/sampler.h"
#include "core/ops/cpu/cpu_isa.h"
#include "core/random.h"

using namespace starflow::core;

namespace {

FlowConfig sampler_config(bool conditional, SeqOrder order, int64_t patch = 1) {
  FlowConfig c;
  c.in_channels = 2;
  c.img_size = 4;
  c.patch_size = patch;
  c.num_blocks = 3;
  c.layers_per_block = {1, 1, 2};
  c.seq_order = order;
  c.channels = conditional ? 40 : 16;
  c.head_dim = conditional ? 20 : 8;
  if (conditional) c.txt_size = 2, c.txt_dim = 3;
  return c;
}

std::vector<double> randn(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<double> v(n);
  for (double& x : v) x = r.normal();
  return v;
}

StarFlowModel<double> make_model(const FlowConfig& c, uint64_t seed) {
  StarFlowModel<double> m(c);
  m.init_parameters(seed);
  Rng r(seed + 100);
  for (double& p : m.parameters()) p += 0.1 * r.normal();
  return m;
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

// The float model with the double model's weights (rounded).
void copy_weights(const StarFlowModel<double>& from, StarFlowModel<float>& to) {
  for (size_t i = 0; i < from.parameters().size(); ++i) to.parameters()[i] = float(from.parameters()[i]);
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

}  // namespace

TEST(Sampler, SequentialReverseInvertsForward) {
  for (bool conditional : {false, true})
    for (SeqOrder order : {SeqOrder::L2R, SeqOrder::R2L}) {
      const FlowConfig c = sampler_config(conditional, order, conditional ? 1 : 2);
      auto m = make_model(c, 21);
      const int64_t B = 3, n = B * c.in_channels * c.img_size * c.img_size;
      const auto noise = randn(n, 1);
      const auto y = randn(B * c.txt_size * c.txt_dim, 2);
      const double* yp = conditional ? y.data() : nullptr;
      const auto x = sample(m, noise.data(), yp, nullptr, B, SampleOptions{});
      m.forward(x.data(), yp, B, 0);
      EXPECT_LT(max_diff(m.z(), noise), 1e-12) << "conditional " << conditional;
      EXPECT_GT(max_diff(x, noise), 1e-2);  // the flow is not the identity
    }
}

TEST(Sampler, TightJacobiEqualsSequential) {
  const FlowConfig c = sampler_config(true, SeqOrder::L2R);
  auto m = make_model(c, 5);
  const int64_t B = 2, n = B * c.in_channels * c.img_size * c.img_size;
  const auto noise = randn(n, 3);
  const auto y = randn(B * c.txt_size * c.txt_dim, 4);
  const auto y_null = randn(B * c.txt_size * c.txt_dim, 6);
  for (double w : {0.0, 1.5}) {
    SampleOptions seq;
    seq.guidance = w;
    SampleOptions jac = seq;
    jac.jacobi = true;
    jac.jacobi_block_size = 5;  // chunks of 5, 5, 5, 1 tokens: a ragged last chunk
    jac.jacobi_max_iter = 8;
    jac.jacobi_threshold = 1e-30;
    SampleTrace<double> trace;
    const auto a = sample(m, noise.data(), y.data(), y_null.data(), B, seq);
    const auto b = sample(m, noise.data(), y.data(), y_null.data(), B, jac, &trace);
    EXPECT_LT(max_diff(a, b), 1e-12) << "w = " << w;
    ASSERT_EQ(trace.jacobi_iterations.size(), 3u);
    EXPECT_EQ(trace.jacobi_iterations[0].size(), 4u);
    // Token k of a chunk is exact after k+1 iterations; the chunk of 5 reaches a bit-exact fixed point by
    // iteration 6 at the latest (δ = 0), well before the cap.
    for (int64_t it : trace.jacobi_iterations[0]) EXPECT_LE(it, 7);
  }
}

TEST(Sampler, LooseJacobiStopsEarlyAndDiffers) {
  const FlowConfig c = sampler_config(false, SeqOrder::L2R);
  auto m = make_model(c, 9);
  const int64_t B = 2, n = B * c.in_channels * c.img_size * c.img_size;
  const auto noise = randn(n, 8);
  SampleOptions jac;
  jac.jacobi = true;
  jac.jacobi_block_size = 16;
  jac.jacobi_max_iter = 32;
  jac.jacobi_threshold = 1e-2;
  SampleTrace<double> trace;
  const auto a = sample(m, noise.data(), nullptr, nullptr, B, SampleOptions{});
  const auto b = sample(m, noise.data(), nullptr, nullptr, B, jac, &trace);
  EXPECT_LT(trace.jacobi_iterations[0][0], 16);
  EXPECT_GT(max_diff(a, b), 1e-6);
}

TEST(Sampler, GuidanceWeightZeroIsUnguided) {
  const FlowConfig c = sampler_config(true, SeqOrder::R2L);
  auto m = make_model(c, 13);
  const int64_t B = 2, n = B * c.in_channels * c.img_size * c.img_size;
  const auto noise = randn(n, 11);
  const auto y = randn(B * c.txt_size * c.txt_dim, 12);
  const auto y_null = randn(B * c.txt_size * c.txt_dim, 14);
  SampleOptions w0;
  const auto guided0 = sample(m, noise.data(), y.data(), y_null.data(), B, w0);
  const auto plain = sample(m, noise.data(), y.data(), nullptr, B, w0);
  EXPECT_LT(max_diff(guided0, plain), 1e-13);
  SampleOptions w2;
  w2.guidance = 2.0;
  const auto guided2 = sample(m, noise.data(), y.data(), y_null.data(), B, w2);
  EXPECT_GT(max_diff(guided2, plain), 1e-3);
  // With the null condition equal to the condition, guidance is a no-op for any w.
  const auto same = sample(m, noise.data(), y.data(), y.data(), B, w2);
  EXPECT_LT(max_diff(same, plain), 1e-12);
}

TEST(Sampler, DenoiseIsTheScaledInputGradient) {
  const FlowConfig c = sampler_config(true, SeqOrder::L2R);
  auto m = make_model(c, 17);
  const int64_t B = 2, n = B * c.in_channels * c.img_size * c.img_size;
  auto x = randn(n, 15);
  const auto y = randn(B * c.txt_size * c.txt_dim, 16);
  const double sigma = 0.3;
  const auto out = denoise(m, x.data(), y.data(), B, sigma);
  // Central differences of the per-dim NLL (no regulariser) at a few coordinates.
  for (int64_t i : {int64_t(0), n / 3, n - 1}) {
    const double h = 1e-6, saved = x[i];
    x[i] = saved + h;
    const double lp = m.forward(x.data(), y.data(), B, 0).nll;
    x[i] = saved - h;
    const double lm = m.forward(x.data(), y.data(), B, 0).nll;
    x[i] = saved;
    const double expected = saved - sigma * sigma * n * (lp - lm) / (2 * h);
    EXPECT_NEAR(out[i], expected, 1e-6 * std::max(1.0, std::abs(expected))) << "element " << i;
  }
  // Batch-size independence: denoising one sample alone gives the same result.
  const auto single = denoise(m, x.data(), y.data(), 1, sigma);
  for (int64_t i = 0; i < n / B; ++i) EXPECT_NEAR(single[i], out[i], 1e-10);
}

// Float sampling takes the fused decode step (one parallel region per layer, head_dim a multiple of 8, no
// TP): its samples invert the float forward pass to float precision, agree with double sampling of the
// same weights, and are the same bits with one thread and with two, guided or not, whether the two
// threads split each step's work (5 samples) or take groups of samples (9 unguided on an AVX-512 host: 8 and 1,
// through the lane-tile kernel; 17 guided: groups of 8, 8 and 1 samples, 2 rows each; 33 unguided: 16, 16 and
// 1), and whatever the batch (the text prefix runs in fixed groups).
TEST(Sampler, FusedFloatDecodeInvertsForwardAndIgnoresThreadCount) {
  FlowConfig c = sampler_config(true, SeqOrder::L2R);
  c.channels = 72;
  c.head_dim = 24;  // 3 heads
  const auto md = make_model(c, 23);
  StarFlowModel<float> mf(c);
  copy_weights(md, mf);
  const int64_t per_sample = c.in_channels * c.img_size * c.img_size, per_text = c.txt_size * c.txt_dim;
  std::vector<float> first_of_five[2];
  for (const auto& [B, w] : {std::pair<int64_t, double>{5, 0.0}, {5, 2.0}, {9, 0.0}, {17, 2.0}, {33, 0.0}}) {
    const auto noise = randn(B * per_sample, 31);
    const auto y = randn(B * per_text, 32), y_null = randn(B * per_text, 33);
    const auto noise_f = to_float(noise), y_f = to_float(y), y_null_f = to_float(y_null);
    SampleOptions opt;
    opt.guidance = w;
    const float* yn = w > 0 ? y_null_f.data() : nullptr;
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const auto one = sample(mf, noise_f.data(), y_f.data(), yn, B, opt);
    omp_set_num_threads(2);
    const auto two = sample(mf, noise_f.data(), y_f.data(), yn, B, opt);
    omp_set_num_threads(saved);
    ASSERT_EQ(one.size(), two.size());
    EXPECT_EQ(0, std::memcmp(one.data(), two.data(), sizeof(float) * one.size())) << "B = " << B << ", w = " << w;
    // randn's stream starts alike for every B: the first sample is the same at B = 5 and at the larger B.
    auto& first = first_of_five[w > 0];
    if (B == 5) first.assign(one.begin(), one.begin() + per_sample);
    else EXPECT_EQ(0, std::memcmp(first.data(), one.data(), sizeof(float) * per_sample)) << "B = " << B;
    const auto ref = sample(md, noise.data(), y.data(), w > 0 ? y_null.data() : nullptr, B, opt);
    double worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(ref[i] - double(one[i])));
    EXPECT_LT(worst, 1e-4) << "B = " << B << ", w = " << w;
    if (w == 0) {  // unguided: the float forward pass takes the samples back to the noise
      mf.forward(one.data(), y_f.data(), B, 0);
      double back = 0;
      for (size_t i = 0; i < noise.size(); ++i) back = std::max(back, std::abs(double(mf.z()[i]) - noise[i]));
      EXPECT_LT(back, 1e-4) << "B = " << B;
    }
  }
}

// The official switches in the fused step (each alone, then all together; grouped-query: 2 query heads on one
// KV head): the step takes them (the blocks
// split into thread groups, which only fused blocks do), and the samples keep the fused step's guarantees:
// within float rounding of double sampling (which runs op by op), the same bits for one thread and two, and
// unguided samples that the float forward pass takes back to the noise.
TEST(Sampler, FusedDecodeTakesTheOfficialSwitches) {
  struct Switches {
    const char* name;
    void (*apply)(FlowConfig&);
    double tolerance = 1e-4;  // from double sampling
  };
  const Switches cases[] = {
      {"rms_norm", [](FlowConfig& c) { c.norm_type = NormType::kRmsNorm; }},
      {"no pre-norm", [](FlowConfig& c) { c.norm_type = NormType::kNone; }},
      {"no bias", [](FlowConfig& c) { c.use_bias = false; }},
      {"swiglu", [](FlowConfig& c) { c.use_swiglu = true; }},
      {"qk_norm", [](FlowConfig& c) { c.use_qk_norm = true; }},
      {"post_norm", [](FlowConfig& c) { c.use_post_norm = true; }},
      {"grouped-query", [](FlowConfig& c) { c.kv_heads = 1; }},
      {"hf_style_rope", [](FlowConfig& c) { c.hf_style_rope = true; }},
      {"all", [](FlowConfig& c) {
         c.norm_type = NormType::kRmsNorm;
         c.use_bias = false;
         c.use_swiglu = true;
         c.use_qk_norm = true;
         c.use_post_norm = true;
         c.kv_heads = 1;
         c.hf_style_rope = true;
       },
       // Guided, this model's float sampling is 1.5e-4 from double op by op too (1.75e-4 fused).
       3e-4},
  };
  for (const Switches& sw : cases) {
    FlowConfig c = sampler_config(true, SeqOrder::L2R);
    c.channels = 64;
    c.head_dim = 32;  // 2 heads; the AVX-512 attention kernel where the host has it
    sw.apply(c);
    const auto md = make_model(c, 61);
    StarFlowModel<float> mf(c);
    copy_weights(md, mf);
    const int saved = omp_get_max_threads();
#ifdef STARFLOW_SMALL_BATCH_KERNEL
    omp_set_num_threads(2);
    for (int64_t k = 0; k < c.num_blocks; ++k) {
      if (mf.block(k).identity()) continue;
      EXPECT_GT(mf.backend().samples_per_thread_group(mf.block(k), SampleOptions{}, 33, 1), 0)
          << sw.name << ": block " << k << " is not decoded by the fused step";
    }
#endif
    const int64_t per_sample = c.in_channels * c.img_size * c.img_size, per_text = c.txt_size * c.txt_dim;
    for (const auto& [B, w] : {std::pair<int64_t, double>{5, 2.0}, {9, 0.0}}) {
      const auto noise = randn(B * per_sample, 71), y = randn(B * per_text, 72), y_null = randn(B * per_text, 73);
      const auto noise_f = to_float(noise), y_f = to_float(y), y_null_f = to_float(y_null);
      SampleOptions opt;
      opt.guidance = w;
      const float* yn = w > 0 ? y_null_f.data() : nullptr;
      omp_set_num_threads(1);
      const auto one = sample(mf, noise_f.data(), y_f.data(), yn, B, opt);
      omp_set_num_threads(2);
      const auto two = sample(mf, noise_f.data(), y_f.data(), yn, B, opt);
      EXPECT_EQ(0, std::memcmp(one.data(), two.data(), sizeof(float) * one.size())) << sw.name << ", B = " << B;
      const auto ref = sample(md, noise.data(), y.data(), w > 0 ? y_null.data() : nullptr, B, opt);
      double worst = 0;
      for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(ref[i] - double(one[i])));
      EXPECT_LT(worst, sw.tolerance) << sw.name << ", B = " << B;
      if (w == 0) {
        mf.forward(one.data(), y_f.data(), B, 0);
        double back = 0;
        for (size_t i = 0; i < noise.size(); ++i) back = std::max(back, std::abs(double(mf.z()[i]) - noise[i]));
        EXPECT_LT(back, 1e-4) << sw.name;
      }
    }
    omp_set_num_threads(saved);
  }
}

#ifdef STARFLOW_AVX512_KERNELS
// The fused step's AVX-512 kernels (head_dim 32: the attention's 16-lane form runs too) against the AVX2 ones:
// each set gives the same bits for one and two threads and samples within float rounding of double
// sampling; the two sets agree to that rounding (the linears' bits are equal, the attention scores' sums are
// grouped by 16 lanes instead of 8).
TEST(Sampler, Avx512FusedDecodeAgreesWithAvx2) {
  if (!cpu::host_has_avx512()) GTEST_SKIP() << "this host has no AVX-512";
  FlowConfig c = sampler_config(true, SeqOrder::L2R);
  c.channels = 64;
  c.head_dim = 32;
  const auto md = make_model(c, 37);
  StarFlowModel<float> mf(c);
  copy_weights(md, mf);
  const int64_t B = 17, per_sample = c.in_channels * c.img_size * c.img_size, per_text = c.txt_size * c.txt_dim;
  const auto noise = randn(B * per_sample, 51), y = randn(B * per_text, 52), y_null = randn(B * per_text, 53);
  const auto noise_f = to_float(noise), y_f = to_float(y), y_null_f = to_float(y_null);
  SampleOptions opt;
  opt.guidance = 2.0;
  const auto ref = sample(md, noise.data(), y.data(), y_null.data(), B, opt);
  const cpu::CpuIsa saved_isa = cpu::cpu_isa();
  std::vector<float> by_isa[2];
  for (const cpu::CpuIsa isa : {cpu::CpuIsa::kBaseline, cpu::CpuIsa::kAvx512}) {
    cpu::set_cpu_isa(isa);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const auto one = sample(mf, noise_f.data(), y_f.data(), y_null_f.data(), B, opt);
    omp_set_num_threads(2);
    const auto two = sample(mf, noise_f.data(), y_f.data(), y_null_f.data(), B, opt);
    omp_set_num_threads(saved);
    EXPECT_EQ(0, std::memcmp(one.data(), two.data(), sizeof(float) * one.size())) << cpu::cpu_isa_name(isa);
    double worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(ref[i] - double(one[i])));
    EXPECT_LT(worst, 1e-4) << cpu::cpu_isa_name(isa);
    by_isa[isa == cpu::CpuIsa::kAvx512] = one;
  }
  cpu::set_cpu_isa(saved_isa);
  double apart = 0;
  for (size_t i = 0; i < ref.size(); ++i) apart = std::max(apart, double(std::abs(by_isa[0][i] - by_isa[1][i])));
  EXPECT_LT(apart, 5e-5);  // each set is ~1.5e-5 from double sampling here
}
#endif

// Text prefixes longer than the fused step's 64 rows per sample take the op-by-op path, and Jacobi chunks
// of 16 positions × 5 samples (80 rows) too: their linears still give each row the same bits whatever the
// number of rows or threads (BLAS would not: OpenBLAS's sums change with its thread count).
TEST(Sampler, LongPrefixAndJacobiIgnoreThreadCount) {
  FlowConfig c = sampler_config(true, SeqOrder::L2R);
  c.channels = 48;
  c.head_dim = 24;
  c.txt_size = 70;
  const auto md = make_model(c, 29);
  StarFlowModel<float> mf(c);
  copy_weights(md, mf);
  const int64_t B = 5, per_sample = c.in_channels * c.img_size * c.img_size, per_text = c.txt_size * c.txt_dim;
  const auto noise = to_float(randn(B * per_sample, 41)), y = to_float(randn(B * per_text, 42)),
             y_null = to_float(randn(B * per_text, 43));
  for (const bool jacobi : {false, true}) {
    SampleOptions opt;
    opt.guidance = 1.5;
    opt.jacobi = jacobi;
    opt.jacobi_block_size = 16;
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const auto one = sample(mf, noise.data(), y.data(), y_null.data(), B, opt);
    omp_set_num_threads(2);
    const auto two = sample(mf, noise.data(), y.data(), y_null.data(), B, opt);
    omp_set_num_threads(saved);
    EXPECT_EQ(0, std::memcmp(one.data(), two.data(), sizeof(float) * one.size())) << "jacobi = " << jacobi;
  }
}

// Samples that share a condition share its text prefix (computed once and copied): each sample of a batch
// with repeated conditions, guided by a null caption common to all, is the same bits as that sample alone.
TEST(Sampler, SharedConditionsGiveTheSamplesOfSingleSampleCalls) {
  FlowConfig c = sampler_config(true, SeqOrder::L2R);
  c.channels = 48;
  c.head_dim = 24;
  const auto md = make_model(c, 31);
  StarFlowModel<float> mf(c);
  copy_weights(md, mf);
  const int64_t B = 5, per_sample = c.in_channels * c.img_size * c.img_size, per_text = c.txt_size * c.txt_dim;
  const auto noise = to_float(randn(B * per_sample, 51)), two = to_float(randn(2 * per_text, 52)),
             null_one = to_float(randn(per_text, 53));
  const int pick[B] = {0, 1, 0, 0, 1};  // conditions a, b, a, a, b
  std::vector<float> y(B * per_text), y_null(B * per_text);
  for (int64_t b = 0; b < B; ++b) {
    std::copy_n(two.data() + pick[b] * per_text, per_text, y.data() + b * per_text);
    std::copy_n(null_one.data(), per_text, y_null.data() + b * per_text);
  }
  for (const double w : {0.0, 2.5}) {
    SampleOptions opt;
    opt.guidance = w;
    const float* yn = w > 0 ? y_null.data() : nullptr;
    const auto batch = sample(mf, noise.data(), y.data(), yn, B, opt);
    for (int64_t b = 0; b < B; ++b) {
      const auto alone = sample(mf, noise.data() + b * per_sample, y.data() + b * per_text,
                                yn ? yn + b * per_text : nullptr, 1, opt);
      EXPECT_EQ(0, std::memcmp(alone.data(), batch.data() + b * per_sample, sizeof(float) * per_sample))
          << "sample " << b << ", w = " << w;
    }
  }
}

// Sampling keeps the decode weights tiled between calls (StarFlowModel::decode_weights): after the
// parameters change (an optimizer step, a checkpoint load), the next call samples the new weights, the same
// bits as a model that never held the old ones.
TEST(Sampler, TiledDecodeWeightsFollowParameterChanges) {
  FlowConfig c = sampler_config(true, SeqOrder::L2R);
  c.channels = 48;
  c.head_dim = 24;
  StarFlowModel<float> mf(c), fresh(c);
  copy_weights(make_model(c, 37), mf);
  const int64_t B = 3, per_sample = c.in_channels * c.img_size * c.img_size, per_text = c.txt_size * c.txt_dim;
  const auto noise = to_float(randn(B * per_sample, 61)), y = to_float(randn(B * per_text, 62)),
             y_null = to_float(randn(B * per_text, 63));
  SampleOptions opt;
  opt.guidance = 1.0;
  const auto before = sample(mf, noise.data(), y.data(), y_null.data(), B, opt);
  const uint64_t version = mf.parameters_version();
  const auto other = make_model(c, 38);
  copy_weights(other, mf);
  EXPECT_GT(mf.parameters_version(), version);
  copy_weights(other, fresh);
  const auto after = sample(mf, noise.data(), y.data(), y_null.data(), B, opt);
  const auto expected = sample(fresh, noise.data(), y.data(), y_null.data(), B, opt);
  EXPECT_EQ(0, std::memcmp(after.data(), expected.data(), sizeof(float) * after.size()));
  EXPECT_NE(0, std::memcmp(after.data(), before.data(), sizeof(float) * after.size()));
}
