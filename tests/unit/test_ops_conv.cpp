// Convolutional-autoencoder ops (conv2d, nearest 2× upsampling, GroupNorm, SiLU): conv2d against a naive
// direct convolution over stride/padding/kernel/shape combinations, every input and parameter gradient
// against central differences in double, and the float path against the double path.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/ops/cpu/conv2d.h"
#include "core/ops/cpu/group_norm.h"
#include "core/ops/cpu/silu.h"
#include "core/ops/cpu/upsample.h"
#include "tests/unit/gradcheck.h"

using namespace starflow::core::cpu;
using starflow::tests::gradients_match;
using starflow::tests::numeric_gradient;
using starflow::tests::project;
using starflow::tests::random_vector;

namespace {

constexpr double kGradTol = 1e-6;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

template <class T>
std::vector<T> cast_vector(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

std::vector<double> minus(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

// max|a−b| / max|b| between a float result and its double reference.
double rel_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff = std::fmax(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::fmax(scale, std::fabs(b[i]));
  }
  return diff / std::fmax(scale, 1e-30);
}

std::string describe(const Conv2dShape& s) {
  return "B=" + std::to_string(s.batch) + " Cin=" + std::to_string(s.in_channels) + " H=" +
         std::to_string(s.height) + " W=" + std::to_string(s.width) + " Cout=" + std::to_string(s.out_channels) +
         " k=" + std::to_string(s.kernel) + " stride=" + std::to_string(s.stride) +
         " pad=" + std::to_string(s.padding_top()) + "," + std::to_string(s.padding_left()) + "," +
         std::to_string(s.padding_bottom()) + "," + std::to_string(s.padding_right());
}

// The definition of a convolution, one output at a time.
std::vector<double> naive_conv2d(const std::vector<double>& in, const std::vector<double>& weight,
                                 const double* bias, const Conv2dShape& s) {
  const int64_t Ho = s.out_height(), Wo = s.out_width(), k = s.kernel;
  std::vector<double> out(s.batch * s.out_channels * Ho * Wo);
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t o = 0; o < s.out_channels; ++o)
      for (int64_t oy = 0; oy < Ho; ++oy)
        for (int64_t ox = 0; ox < Wo; ++ox) {
          double acc = bias ? bias[o] : 0.0;
          for (int64_t c = 0; c < s.in_channels; ++c)
            for (int64_t ky = 0; ky < k; ++ky)
              for (int64_t kx = 0; kx < k; ++kx) {
                const int64_t iy = oy * s.stride - s.padding_top() + ky, ix = ox * s.stride - s.padding_left() + kx;
                if (iy < 0 || iy >= s.height || ix < 0 || ix >= s.width) continue;
                acc += in[((b * s.in_channels + c) * s.height + iy) * s.width + ix] *
                       weight[((o * s.in_channels + c) * k + ky) * k + kx];
              }
          out[((b * s.out_channels + o) * Ho + oy) * Wo + ox] = acc;
        }
  return out;
}

int64_t in_size(const Conv2dShape& s) { return s.batch * s.in_channels * s.height * s.width; }
int64_t out_size(const Conv2dShape& s) { return s.batch * s.out_channels * s.out_height() * s.out_width(); }

// Shapes covering what the autoencoder uses (3×3 stride 1 and 2, pad 1), the 1×1 fast path, even
// kernels, padding wider than the kernel's reach, non-square images with sizes that do not divide by the
// stride, and a batch above the 16 dweight chunks. Each runs through the im2col + gemm engine as given,
// and through the direct engine (≤ 4 output channels, rows ≥ 16) once widened by with_long_rows().
const Conv2dShape kShapes[] = {
    {2, 3, 7, 6, 4, 3, 1, 1},  {2, 3, 8, 8, 5, 3, 2, 1}, {1, 2, 9, 7, 3, 3, 2, 1}, {2, 4, 5, 6, 3, 1, 1, 0},
    {1, 2, 6, 5, 2, 4, 2, 1},  {2, 2, 5, 5, 3, 3, 1, 2}, {1, 3, 6, 6, 2, 2, 2, 0}, {1, 2, 7, 8, 3, 5, 3, 2},
    {19, 2, 4, 4, 3, 3, 1, 1}, {3, 1, 6, 6, 2, 1, 2, 0}, {2, 6, 7, 6, 1, 3, 1, 1}, {2, 5, 5, 6, 6, 3, 1, 1},
};

// The same shape with an image wide enough for output rows of ≥ 16 pixels.
Conv2dShape with_long_rows(Conv2dShape s) {
  s.width = (16 - 1) * s.stride + s.kernel - s.padding_left() - s.padding_right() + 1;
  return s;
}

Conv2dShape with_padding(Conv2dShape s, int64_t top, int64_t left, int64_t bottom, int64_t right) {
  s.pad_top = top;
  s.pad_left = left;
  s.pad_bottom = bottom;
  s.pad_right = right;
  return s;
}

// Per-side padding: the SD VAE's downsampler (right and bottom by 1, stride 2, on even and odd sizes), and
// every side different. Images large enough for several row tiles of the gemm engine (256 output pixels each,
// the last one partial), as a 1×1 convolution too.
const Conv2dShape kMoreShapes[] = {
    with_padding({2, 3, 8, 8, 5, 3, 2, 0}, 0, 0, 1, 1),   with_padding({1, 2, 7, 9, 3, 3, 2, 0}, 0, 0, 1, 1),
    with_padding({2, 2, 6, 7, 3, 3, 1, 0}, 2, 0, 1, 3),   with_padding({1, 3, 5, 6, 2, 2, 1, 1}, 0, 1, 1, 0),
    {2, 3, 37, 23, 5, 3, 1, 1},                            {1, 4, 30, 29, 6, 1, 1, 0},
    with_padding({1, 2, 41, 40, 5, 3, 2, 0}, 0, 0, 1, 1),
};

std::vector<Conv2dShape> all_shapes() {
  std::vector<Conv2dShape> shapes;
  for (const Conv2dShape& s : kShapes) {
    shapes.push_back(s);
    shapes.push_back(with_long_rows(s));
  }
  for (const Conv2dShape& s : kMoreShapes) {
    shapes.push_back(s);
    if (s.height * s.width < 200) shapes.push_back(with_long_rows(s));
  }
  return shapes;
}

template <class T>
void check_conv_forward(const Conv2dShape& s, bool with_bias, std::mt19937_64& rng) {
  const std::vector<double> in = random_vector(in_size(s), rng), weight = random_vector(s.weight_size(), rng);
  const std::vector<double> bias = random_vector(s.out_channels, rng);
  const std::vector<double> ref = naive_conv2d(in, weight, with_bias ? bias.data() : nullptr, s);
  const auto in_t = cast_vector<T>(in), weight_t = cast_vector<T>(weight), bias_t = cast_vector<T>(bias);
  std::vector<T> out(out_size(s), static_cast<T>(kNaN));  // must be overwritten, NaN may not leak
  conv2d_forward<T>(out.data(), in_t.data(), weight_t.data(), with_bias ? bias_t.data() : nullptr, s);
  double max_err = 0.0, scale = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(static_cast<double>(out[i]) - ref[i]);
    max_err = std::isnan(err) || std::isnan(max_err) ? kNaN : std::fmax(max_err, err);
    scale = std::fmax(scale, std::fabs(ref[i]));
  }
  const double tol = sizeof(T) == 4 ? 1e-5 : 1e-13;
  EXPECT_LE(max_err / scale, tol) << describe(s) << " bias=" << with_bias << " T=" << (sizeof(T) == 4 ? "float" : "double");
}

TEST(Conv2d, MatchesNaiveConvolutionDouble) {
  std::mt19937_64 rng(1);
  for (const Conv2dShape& s : all_shapes())
    for (bool bias : {true, false}) check_conv_forward<double>(s, bias, rng);
}

TEST(Conv2d, MatchesNaiveConvolutionFloat) {
  std::mt19937_64 rng(2);
  for (const Conv2dShape& s : all_shapes())
    for (bool bias : {true, false}) check_conv_forward<float>(s, bias, rng);
}

// Gradients of L = Σ w⊙conv(in) w.r.t. in, weight and bias. dweight and dbias start non-zero to prove
// they accumulate; din starts as NaN (must be overwritten) or random (must be accumulated onto).
void check_conv_gradients(const Conv2dShape& s, bool accumulate_din, std::mt19937_64& rng) {
  SCOPED_TRACE(describe(s) + " accumulate_din=" + std::to_string(accumulate_din));
  std::vector<double> in = random_vector(in_size(s), rng), weight = random_vector(s.weight_size(), rng);
  std::vector<double> bias = random_vector(s.out_channels, rng), w = random_vector(out_size(s), rng);
  std::vector<double> out(out_size(s));
  const std::vector<double> din0 =
      accumulate_din ? random_vector(in_size(s), rng) : std::vector<double>(in_size(s), kNaN);
  const std::vector<double> dweight0 = random_vector(s.weight_size(), rng), dbias0 = random_vector(s.out_channels, rng);
  std::vector<double> din = din0, dweight = dweight0, dbias = dbias0;
  conv2d_backward<double>(din.data(), dweight.data(), dbias.data(), w.data(), in.data(), weight.data(), s,
                          accumulate_din);
  auto loss = [&] {
    conv2d_forward<double>(out.data(), in.data(), weight.data(), bias.data(), s);
    return project(out, w);
  };
  EXPECT_TRUE(gradients_match(accumulate_din ? minus(din, din0) : din, numeric_gradient(in, loss), kGradTol));
  EXPECT_TRUE(gradients_match(minus(dweight, dweight0), numeric_gradient(weight, loss), kGradTol));
  EXPECT_TRUE(gradients_match(minus(dbias, dbias0), numeric_gradient(bias, loss), kGradTol));
}

TEST(Conv2d, GradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(3);
  for (const Conv2dShape& s : all_shapes())
    for (bool accumulate : {false, true}) check_conv_gradients(s, accumulate, rng);
}

TEST(Conv2d, NullGradientBuffersAreSkipped) {
  const Conv2dShape s{2, 3, 6, 6, 4, 3, 2, 1};
  std::mt19937_64 rng(4);
  const std::vector<double> in = random_vector(in_size(s), rng), weight = random_vector(s.weight_size(), rng);
  const std::vector<double> dout = random_vector(out_size(s), rng);
  std::vector<double> din_all(in_size(s)), dw_all(s.weight_size(), 0.0), db_all(s.out_channels, 0.0);
  conv2d_backward<double>(din_all.data(), dw_all.data(), db_all.data(), dout.data(), in.data(), weight.data(), s);
  // Each buffer alone gives the same values as all three together.
  std::vector<double> din(in_size(s)), dw(s.weight_size(), 0.0), db(s.out_channels, 0.0);
  conv2d_backward<double>(din.data(), nullptr, nullptr, dout.data(), in.data(), weight.data(), s);
  conv2d_backward<double>(nullptr, dw.data(), nullptr, dout.data(), in.data(), weight.data(), s);
  conv2d_backward<double>(nullptr, nullptr, db.data(), dout.data(), in.data(), weight.data(), s);
  EXPECT_EQ(din, din_all);
  EXPECT_EQ(dw, dw_all);
  EXPECT_EQ(db, db_all);
}

// The dweight chunks are cut by batch size, not thread count: any OMP_NUM_THREADS gives the same bits.
TEST(Conv2d, GradientsAreIdenticalForAnyThreadCount) {
  // One shape per engine (gemm, direct), and one image in several row tiles (the gemm engine's forward).
  for (const Conv2dShape& s : {Conv2dShape{24, 16, 16, 16, 16, 3, 1, 1}, Conv2dShape{24, 16, 16, 16, 2, 3, 1, 1},
                               Conv2dShape{1, 16, 40, 40, 16, 3, 1, 1}}) {
    std::mt19937_64 rng(5);
    const auto in = cast_vector<float>(random_vector(in_size(s), rng));
    const auto weight = cast_vector<float>(random_vector(s.weight_size(), rng));
    const auto dout = cast_vector<float>(random_vector(out_size(s), rng));
    auto run = [&](int threads) {
      const int saved = omp_get_max_threads();
      omp_set_num_threads(threads);
      std::vector<float> out(out_size(s)), din(in_size(s)), dw(s.weight_size(), 0.0f), db(s.out_channels, 0.0f);
      conv2d_forward<float>(out.data(), in.data(), weight.data(), nullptr, s);
      conv2d_backward<float>(din.data(), dw.data(), db.data(), dout.data(), in.data(), weight.data(), s);
      omp_set_num_threads(saved);
      out.insert(out.end(), din.begin(), din.end());
      out.insert(out.end(), dw.begin(), dw.end());
      out.insert(out.end(), db.begin(), db.end());
      return out;
    };
    const std::vector<float> one = run(1);
    EXPECT_EQ(one, run(2)) << describe(s);
    EXPECT_EQ(one, run(3)) << describe(s);
  }
}

TEST(Conv2d, FloatForwardAndBackwardMatchDouble) {
  // One shape per engine (gemm, direct).
  for (const Conv2dShape& s : {Conv2dShape{3, 8, 10, 10, 6, 3, 2, 1}, Conv2dShape{3, 8, 10, 20, 1, 3, 1, 1}}) {
    SCOPED_TRACE(describe(s));
    std::mt19937_64 rng(6);
    const std::vector<double> in = random_vector(in_size(s), rng), weight = random_vector(s.weight_size(), rng);
    const std::vector<double> bias = random_vector(s.out_channels, rng), dout = random_vector(out_size(s), rng);
    std::vector<double> out(out_size(s)), din(in_size(s)), dw(s.weight_size(), 0.0), db(s.out_channels, 0.0);
    conv2d_forward<double>(out.data(), in.data(), weight.data(), bias.data(), s);
    conv2d_backward<double>(din.data(), dw.data(), db.data(), dout.data(), in.data(), weight.data(), s);
    const auto in_f = cast_vector<float>(in), weight_f = cast_vector<float>(weight);
    const auto bias_f = cast_vector<float>(bias), dout_f = cast_vector<float>(dout);
    std::vector<float> out_f(out_size(s)), din_f(in_size(s)), dw_f(s.weight_size(), 0.0f),
        db_f(s.out_channels, 0.0f);
    conv2d_forward<float>(out_f.data(), in_f.data(), weight_f.data(), bias_f.data(), s);
    conv2d_backward<float>(din_f.data(), dw_f.data(), db_f.data(), dout_f.data(), in_f.data(), weight_f.data(), s);
    EXPECT_LE(rel_diff(out_f, out), 1e-5);
    EXPECT_LE(rel_diff(din_f, din), 1e-5);
    EXPECT_LE(rel_diff(dw_f, dw), 1e-5);
    EXPECT_LE(rel_diff(db_f, db), 1e-5);
  }
}

// ---------------------------------------------------------------- upsample

TEST(ConvUpsample, NearestCopiesEachPixelToA2x2Block) {
  const std::vector<double> in = {1, 2, 3, 4, 5, 6};  // one plane, 2×3
  std::vector<double> out(24);
  upsample_nearest2x_forward<double>(out.data(), in.data(), 1, 2, 3);
  EXPECT_EQ(out, (std::vector<double>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6}));
}

TEST(ConvUpsample, GradientMatchesFiniteDifferences) {
  const int64_t planes = 3, H = 3, W = 4;
  std::mt19937_64 rng(7);
  std::vector<double> in = random_vector(planes * H * W, rng), w = random_vector(planes * 4 * H * W, rng);
  std::vector<double> out(w.size()), din(in.size(), kNaN);
  upsample_nearest2x_backward<double>(din.data(), w.data(), planes, H, W);
  auto loss = [&] {
    upsample_nearest2x_forward<double>(out.data(), in.data(), planes, H, W);
    return project(out, w);
  };
  EXPECT_TRUE(gradients_match(din, numeric_gradient(in, loss), kGradTol));
}

// ---------------------------------------------------------------- group norm

constexpr double kGroupNormEps = 1e-5;

struct GroupNormCase {
  int64_t B, C, HW, groups;
};

void check_group_norm_gradients(const GroupNormCase& g, bool accumulate_din, std::mt19937_64& rng) {
  SCOPED_TRACE(testing::Message() << "B=" << g.B << " C=" << g.C << " HW=" << g.HW << " groups=" << g.groups
                                  << " accumulate_din=" << accumulate_din);
  const int64_t n = g.B * g.C * g.HW;
  std::vector<double> in = random_vector(n, rng, -2.0, 3.0), gamma = random_vector(g.C, rng, 0.5, 1.5);
  std::vector<double> beta = random_vector(g.C, rng), w = random_vector(n, rng);
  std::vector<double> out(n), mean(g.B * g.groups), rstd(g.B * g.groups);
  group_norm_forward<double>(out.data(), mean.data(), rstd.data(), in.data(), gamma.data(), beta.data(), g.B, g.C,
                             g.HW, g.groups, kGroupNormEps);
  const std::vector<double> din0 = accumulate_din ? random_vector(n, rng) : std::vector<double>(n, kNaN);
  const std::vector<double> dgamma0 = random_vector(g.C, rng), dbeta0 = random_vector(g.C, rng);
  std::vector<double> din = din0, dgamma = dgamma0, dbeta = dbeta0;
  group_norm_backward<double>(din.data(), dgamma.data(), dbeta.data(), w.data(), in.data(), mean.data(),
                              rstd.data(), gamma.data(), g.B, g.C, g.HW, g.groups, accumulate_din);
  auto loss = [&] {
    std::vector<double> m(mean.size()), r(rstd.size());
    group_norm_forward<double>(out.data(), m.data(), r.data(), in.data(), gamma.data(), beta.data(), g.B, g.C, g.HW,
                               g.groups, kGroupNormEps);
    return project(out, w);
  };
  EXPECT_TRUE(gradients_match(accumulate_din ? minus(din, din0) : din, numeric_gradient(in, loss), kGradTol));
  EXPECT_TRUE(gradients_match(minus(dgamma, dgamma0), numeric_gradient(gamma, loss), kGradTol));
  EXPECT_TRUE(gradients_match(minus(dbeta, dbeta0), numeric_gradient(beta, loss), kGradTol));
}

TEST(GroupNorm, GradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(8);
  // Several channels per group, one channel per group (InstanceNorm), one group (LayerNorm over C·HW).
  for (const GroupNormCase& g : {GroupNormCase{2, 6, 5, 3}, GroupNormCase{2, 4, 6, 4}, GroupNormCase{3, 4, 4, 1}})
    for (bool accumulate : {false, true}) check_group_norm_gradients(g, accumulate, rng);
}

TEST(GroupNorm, SavedStatisticsAreBiasedMeanAndRstdPerGroup) {
  const int64_t B = 2, C = 4, HW = 3, groups = 2;
  std::mt19937_64 rng(9);
  const std::vector<double> in = random_vector(B * C * HW, rng, -1.0, 4.0);
  const std::vector<double> gamma(C, 1.0), beta(C, 0.0);
  std::vector<double> out(in.size()), mean(B * groups), rstd(B * groups);
  group_norm_forward<double>(out.data(), mean.data(), rstd.data(), in.data(), gamma.data(), beta.data(), B, C, HW,
                             groups, kGroupNormEps);
  const int64_t n = (C / groups) * HW;
  for (int64_t bg = 0; bg < B * groups; ++bg) {
    double s = 0.0, sq = 0.0;
    for (int64_t i = 0; i < n; ++i) s += in[bg * n + i];
    const double mu = s / n;
    for (int64_t i = 0; i < n; ++i) sq += (in[bg * n + i] - mu) * (in[bg * n + i] - mu);
    EXPECT_NEAR(mean[bg], mu, 1e-14);
    EXPECT_NEAR(rstd[bg], 1.0 / std::sqrt(sq / n + kGroupNormEps), 1e-12);
    // With γ = 1, β = 0 each group comes out with mean 0 and (almost) unit biased variance.
    double out_s = 0.0, out_sq = 0.0;
    for (int64_t i = 0; i < n; ++i) out_s += out[bg * n + i], out_sq += out[bg * n + i] * out[bg * n + i];
    EXPECT_NEAR(out_s / n, 0.0, 1e-12);
    EXPECT_NEAR(out_sq / n, 1.0, 1e-3);
  }
}

TEST(GroupNorm, FloatForwardAndBackwardMatchDouble) {
  const int64_t B = 3, C = 8, HW = 64, groups = 4;
  std::mt19937_64 rng(10);
  const std::vector<double> in = random_vector(B * C * HW, rng, -2.0, 2.0), gamma = random_vector(C, rng, 0.5, 1.5);
  const std::vector<double> beta = random_vector(C, rng), dout = random_vector(B * C * HW, rng);
  std::vector<double> out(in.size()), mean(B * groups), rstd(B * groups), din(in.size()), dg(C, 0.0), db(C, 0.0);
  group_norm_forward<double>(out.data(), mean.data(), rstd.data(), in.data(), gamma.data(), beta.data(), B, C, HW,
                             groups, kGroupNormEps);
  group_norm_backward<double>(din.data(), dg.data(), db.data(), dout.data(), in.data(), mean.data(), rstd.data(),
                              gamma.data(), B, C, HW, groups);
  const auto in_f = cast_vector<float>(in), gamma_f = cast_vector<float>(gamma);
  const auto beta_f = cast_vector<float>(beta), dout_f = cast_vector<float>(dout);
  std::vector<float> out_f(in.size()), mean_f(B * groups), rstd_f(B * groups), din_f(in.size()), dg_f(C, 0.0f),
      db_f(C, 0.0f);
  group_norm_forward<float>(out_f.data(), mean_f.data(), rstd_f.data(), in_f.data(), gamma_f.data(), beta_f.data(), B,
                            C, HW, groups, static_cast<float>(kGroupNormEps));
  group_norm_backward<float>(din_f.data(), dg_f.data(), db_f.data(), dout_f.data(), in_f.data(), mean_f.data(),
                             rstd_f.data(), gamma_f.data(), B, C, HW, groups);
  EXPECT_LE(rel_diff(out_f, out), 1e-5);
  EXPECT_LE(rel_diff(din_f, din), 1e-5);
  EXPECT_LE(rel_diff(dg_f, dg), 1e-5);
  EXPECT_LE(rel_diff(db_f, db), 1e-5);
}

// ---------------------------------------------------------------- silu

TEST(Silu, ForwardValues) {
  const std::vector<double> in = {-3.0, -0.5, 0.0, 0.5, 3.0};
  std::vector<double> out(in.size());
  silu_forward<double>(out.data(), in.data(), static_cast<int64_t>(in.size()));
  for (size_t i = 0; i < in.size(); ++i) EXPECT_NEAR(out[i], in[i] / (1.0 + std::exp(-in[i])), 1e-15);
  // Large negative inputs must give 0, not NaN from exp overflow.
  const float big[] = {-1000.0f, 1000.0f};
  float big_out[2];
  silu_forward<float>(big_out, big, 2);
  EXPECT_NEAR(big_out[0], 0.0f, 1e-30f);
  EXPECT_EQ(big_out[1], 1000.0f);
  float big_grad[2];
  const float ones[] = {1.0f, 1.0f};
  silu_backward<float>(big_grad, ones, big, 2);
  EXPECT_NEAR(big_grad[0], 0.0f, 1e-30f);
  EXPECT_EQ(big_grad[1], 1.0f);
}

TEST(Silu, GradientMatchesFiniteDifferences) {
  std::mt19937_64 rng(11);
  const int64_t n = 50;
  std::vector<double> in = random_vector(n, rng, -5.0, 5.0), w = random_vector(n, rng);
  std::vector<double> out(n), din(n, kNaN);
  silu_backward<double>(din.data(), w.data(), in.data(), n);
  auto loss = [&] {
    silu_forward<double>(out.data(), in.data(), n);
    return project(out, w);
  };
  EXPECT_TRUE(gradients_match(din, numeric_gradient(in, loss), kGradTol));
}

// The vector and scalar exp may differ in the last bit; fixed blocks keep the split between them, and so
// the result, the same for any thread count.
TEST(Silu, ResultsAreIdenticalForAnyThreadCount) {
  const int64_t n = 100'003;
  std::mt19937_64 rng(12);
  const auto in = cast_vector<float>(random_vector(n, rng, -6.0, 6.0));
  const auto dout = cast_vector<float>(random_vector(n, rng));
  auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<float> out(n), din(n);
    silu_forward<float>(out.data(), in.data(), n);
    silu_backward<float>(din.data(), dout.data(), in.data(), n);
    omp_set_num_threads(saved);
    out.insert(out.end(), din.begin(), din.end());
    return out;
  };
  const std::vector<float> one = run(1);
  EXPECT_EQ(one, run(3));
  EXPECT_EQ(one, run(7));
}

}  // namespace
