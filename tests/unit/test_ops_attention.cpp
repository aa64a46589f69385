// RoPE and causal attention ops: the angle table against hand-computed spec §1.5 values, the rotation's
// algebra, attention forward against a naive double reference, causality, and finite-difference
// gradients in double for attention, RoPE and the two chained.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "core/build_config.h"
#include "core/ops/cpu/attention.h"
#include "core/ops/cpu/cpu_isa.h"
#include "core/ops/cpu/rope.h"

using namespace starflow::core::cpu;

namespace {

template <class T>
std::vector<T> random_vector(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(rng));
  return v;
}

double attention_scale(int64_t head_dim) {  // the official (dh^-0.25)^2, not exactly 1/sqrt(dh)
  const double s = std::pow(static_cast<double>(head_dim), -0.25);
  return s * s;
}

// Central difference of loss() with respect to x[index], restoring x afterwards.
template <class Loss>
double central_difference(std::vector<double>& x, size_t index, double h, Loss&& loss) {
  const double saved = x[index];
  x[index] = saved + h;
  const double plus = loss();
  x[index] = saved - h;
  const double minus = loss();
  x[index] = saved;
  return (plus - minus) / (2 * h);
}

// max|a − b| / max|a| over [begin, end) elements that satisfy keep(i).
template <class Keep>
double relative_error(const std::vector<double>& analytic, const std::vector<double>& numeric, Keep&& keep) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < analytic.size(); ++i) {
    if (!keep(i)) continue;
    diff = std::max(diff, std::abs(analytic[i] - numeric[i]));
    scale = std::max(scale, std::abs(analytic[i]));
  }
  return diff / scale;
}

// Textbook attention in double: scores with a −inf causal mask, explicit softmax.
std::vector<double> naive_attention(const std::vector<double>& qkv, int64_t B, int64_t S, int64_t nH, int64_t dh,
                                    double scale) {
  const int64_t C = nH * dh;
  std::vector<double> out(static_cast<size_t>(B * S * C), 0.0);
  std::vector<double> scores(static_cast<size_t>(S));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < nH; ++h)
      for (int64_t i = 0; i < S; ++i) {
        const double* q = &qkv[static_cast<size_t>((b * S + i) * 3 * C + h * dh)];
        for (int64_t j = 0; j < S; ++j) {
          const double* k = &qkv[static_cast<size_t>((b * S + j) * 3 * C + C + h * dh)];
          double dot = 0;
          for (int64_t d = 0; d < dh; ++d) dot += q[d] * k[d];
          scores[static_cast<size_t>(j)] = j <= i ? scale * dot : -std::numeric_limits<double>::infinity();
        }
        const double max_score = *std::max_element(scores.begin(), scores.end());
        double sum = 0;
        for (auto& s : scores) sum += (s = std::exp(s - max_score));
        for (int64_t j = 0; j < S; ++j) {
          const double* v = &qkv[static_cast<size_t>((b * S + j) * 3 * C + 2 * C + h * dh)];
          for (int64_t d = 0; d < dh; ++d)
            out[static_cast<size_t>((b * S + i) * C + h * dh + d)] += scores[static_cast<size_t>(j)] / sum * v[d];
        }
      }
  return out;
}

struct AttentionShape {
  int64_t B, S, nH, dh;
  int64_t C() const { return nH * dh; }
  size_t qkv_size() const { return static_cast<size_t>(B * S * 3 * C()); }
  size_t out_size() const { return static_cast<size_t>(B * S * C()); }
  size_t probs_size() const { return static_cast<size_t>(B * nH * S * S); }
};

template <class T>
std::vector<T> run_forward(const std::vector<T>& qkv, const AttentionShape& a, std::vector<T>* probs_out = nullptr) {
  std::vector<T> out(a.out_size()), probs(a.probs_size());
  attention_forward(out.data(), probs.data(), qkv.data(), a.B, a.S, a.nH, a.dh, static_cast<T>(attention_scale(a.dh)));
  if (probs_out) *probs_out = probs;
  return out;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

float f32_inverse_frequency(int exponent_num, int exponent_den) {  // float32(10000^(−num/den))
  return static_cast<float>(std::pow(10000.0, -static_cast<double>(exponent_num) / exponent_den));
}

}  // namespace

// ---------------------------------------------------------------- RoPE angle table (spec §1.5)

TEST(RopeAngles, NoTextAxisMatchesSpec) {
  const int64_t dh = 64;
  const auto angles = rope_angles(dh, 8, 8, 8, false, 0, false);
  ASSERT_EQ(angles.size(), size_t(64 * dh));
  for (int64_t c = 0; c < dh; ++c) EXPECT_EQ(angles[static_cast<size_t>(c)], 0.0f);  // token 0 at the origin
  // Token 9 of an 8×8 grid: r = 1, c = 1; token 10: r = 1, c = 2. ω_i = 10000^(−i/16), i = 0..15.
  for (int i = 0; i < 16; ++i) {
    const float omega = f32_inverse_frequency(i, 16);
    for (int dup = 0; dup < 2; ++dup) {
      EXPECT_NEAR(angles[9 * dh + 2 * i + dup], omega, 3e-7f * omega) << i;
      EXPECT_NEAR(angles[9 * dh + 32 + 2 * i + dup], omega, 3e-7f * omega) << i;
      EXPECT_NEAR(angles[10 * dh + 32 + 2 * i + dup], 2 * omega, 6e-7f * omega) << i;
    }
  }
  // Last token, (7, 7).
  EXPECT_FLOAT_EQ(angles[63 * dh + 0], 7.0f);
  EXPECT_FLOAT_EQ(angles[63 * dh + 33], 7.0f);
}

TEST(RopeAngles, TextAxisSplitMatchesSpec) {
  const int64_t dh = 64, L = 6, P = 8;
  const auto angles = rope_angles(dh, 8, 8, P, true, L, true);
  ASSERT_EQ(angles.size(), size_t((L + 64) * dh));
  for (int64_t j = 0; j < L; ++j) {
    const float e = (static_cast<float>(j) / static_cast<float>(L)) * static_cast<float>(P);
    for (int64_t c = 0; c < 48; ++c) EXPECT_EQ(angles[j * dh + c], 0.0f) << j << "," << c;
    for (int m = 0; m < 8; ++m) {  // ν_m = 10000^(−m/8)
      const float expected = e * f32_inverse_frequency(m, 8);
      EXPECT_NEAR(angles[j * dh + 48 + 2 * m], expected, 1e-6f) << j << "," << m;
      EXPECT_EQ(angles[j * dh + 48 + 2 * m], angles[j * dh + 48 + 2 * m + 1]);
    }
  }
  // Image token t = 19 (row 2, column 3) sits at table row L + t; spatial ω_i = 10000^(−i/12).
  const float* row = angles.data() + (L + 19) * dh;
  for (int i = 0; i < 12; ++i) {
    const float omega = f32_inverse_frequency(i, 12);
    EXPECT_NEAR(row[2 * i], 2 * omega, 1e-6f) << i;
    EXPECT_NEAR(row[24 + 2 * i + 1], 3 * omega, 1e-6f) << i;
  }
  for (int64_t t = 0; t < 64; ++t)
    for (int64_t c = 48; c < dh; ++c) EXPECT_EQ(angles[(L + t) * dh + c], 0.0f);
  // A text-free block of the same model uses the same 3-D layout, image rows only.
  const auto shallow = rope_angles(dh, 8, 8, P, true, L, false);
  ASSERT_EQ(shallow.size(), size_t(64 * dh));
  EXPECT_TRUE(std::equal(shallow.begin(), shallow.end(), angles.begin() + L * dh));
}

TEST(RopeAngles, RejectsInvalidHeadDim) {
  for (int64_t dh : {8, 16, 18, 34, 33})  // dh/2 − 8 not positive and even
    EXPECT_THROW(rope_angles(dh, 4, 4, 4, true, 2, true), std::invalid_argument) << dh;
  EXPECT_NO_THROW(rope_angles(32, 4, 4, 4, true, 2, true));
  for (int64_t dh : {0, 6, 30, 33})  // not a multiple of 4
    EXPECT_THROW(rope_angles(dh, 4, 4, 4, false, 0, false), std::invalid_argument) << dh;
  EXPECT_NO_THROW(rope_angles(8, 4, 4, 4, false, 0, false));
  EXPECT_THROW(rope_angles(32, 4, 4, 4, false, 2, true), std::invalid_argument);  // text rows, no text axis
}

// ---------------------------------------------------------------- RoPE rotation

TEST(RopeRotate, MatchesPairFormula) {
  const int64_t dh = 8;
  const std::vector<float> angles = {0.3f, 0.3f, -1.1f, -1.1f, 2.0f, 2.0f, 0.0f, 0.0f};
  const auto table = make_rope_table<double>(angles, dh);
  auto x = random_vector<double>(dh, 1);
  const auto x0 = x;
  rope_rotate(x.data(), 1, 1, dh, dh, 1, table, 0, false);
  for (int m = 0; m < dh / 2; ++m) {
    const double phi = angles[static_cast<size_t>(2 * m)];
    EXPECT_NEAR(x[2 * m], x0[2 * m] * std::cos(phi) - x0[2 * m + 1] * std::sin(phi), 1e-15);
    EXPECT_NEAR(x[2 * m + 1], x0[2 * m + 1] * std::cos(phi) + x0[2 * m] * std::sin(phi), 1e-15);
  }
}

// q and k of a qkv buffer [B, S, 3C]: rotating 2·nH heads must leave v alone.
TEST(RopeRotate, InverseRestoresInputAndPreservesPairNorms) {
  const int64_t B = 2, L = 2, dh = 32, nH = 2, C = nH * dh, grid = 3, S = L + grid * grid;
  const auto table = make_rope_table<double>(rope_angles(dh, grid, grid, grid, true, L, true), dh);
  ASSERT_EQ(table.rows, S);
  const auto original = random_vector<double>(static_cast<size_t>(B * S * 3 * C), 2);
  auto x = original;
  rope_rotate(x.data(), B, S, S * 3 * C, 3 * C, 2 * nH, table, 0, false);
  double moved = 0;
  for (size_t i = 0; i < x.size(); i += 2) {
    const bool is_v = (i % static_cast<size_t>(3 * C)) >= static_cast<size_t>(2 * C);
    const double before = std::hypot(original[i], original[i + 1]), after = std::hypot(x[i], x[i + 1]);
    EXPECT_NEAR(after, before, 1e-14);
    if (is_v) {
      EXPECT_EQ(x[i], original[i]);
    }
    moved = std::max(moved, std::abs(x[i] - original[i]));
  }
  EXPECT_GT(moved, 0.1);
  rope_rotate(x.data(), B, S, S * 3 * C, 3 * C, 2 * nH, table, 0, true);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], original[i], 1e-12);
}

// The rotation is linear, so backward = the transpose = the inverse rotation of the upstream gradient.
TEST(RopeRotate, InverseIsExactGradient) {
  const int64_t B = 2, S = 6, dh = 16, nH = 2, row = nH * dh;
  const auto table = make_rope_table<double>(rope_angles(dh, 2, 3, 3, false, 0, false), dh);
  auto x = random_vector<double>(static_cast<size_t>(B * S * row), 3);
  const auto upstream = random_vector<double>(x.size(), 4);
  auto loss = [&] {
    auto y = x;
    rope_rotate(y.data(), B, S, S * row, row, nH, table, 0, false);
    return dot(y, upstream);
  };
  auto grad = upstream;
  rope_rotate(grad.data(), B, S, S * row, row, nH, table, 0, true);
  std::vector<double> numeric(x.size());
  for (size_t i = 0; i < x.size(); ++i) numeric[i] = central_difference(x, i, 1e-6, loss);
  EXPECT_LT(relative_error(grad, numeric, [](size_t) { return true; }), 1e-6);
}

TEST(RopeRotate, RowOffsetSelectsTableRows) {  // KV-cache decoding rotates one row at its own position
  const int64_t dh = 8, nH = 1;
  const auto table = make_rope_table<double>(rope_angles(dh, 3, 3, 3, false, 0, false), dh);
  auto all = random_vector<double>(static_cast<size_t>(9 * dh), 5);
  std::vector<double> last(all.end() - dh, all.end());
  rope_rotate(all.data(), 1, 9, 9 * dh, dh, nH, table, 0, false);
  rope_rotate(last.data(), 1, 1, dh, dh, nH, table, 8, false);
  for (int64_t d = 0; d < dh; ++d) EXPECT_DOUBLE_EQ(last[d], all[8 * dh + d]);
  EXPECT_THROW(rope_rotate(last.data(), 1, 2, dh, dh, nH, table, 8, false), std::invalid_argument);
}

// ---------------------------------------------------------------- attention forward

TEST(AttentionForward, MatchesNaiveReferenceDouble) {
  const AttentionShape a{2, 9, 2, 8};
  const auto qkv = random_vector<double>(a.qkv_size(), 10);
  std::vector<double> probs;
  const auto out = run_forward(qkv, a, &probs);
  const auto ref = naive_attention(qkv, a.B, a.S, a.nH, a.dh, attention_scale(a.dh));
  for (size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], ref[i], 1e-14);
  for (int64_t r = 0; r < a.B * a.nH * a.S; ++r) {
    const int64_t i = r % a.S;
    double sum = 0;
    for (int64_t j = 0; j < a.S; ++j) {
      const double p = probs[static_cast<size_t>(r * a.S + j)];
      if (j > i) {
        EXPECT_EQ(p, 0.0);
      }
      sum += p;
    }
    EXPECT_NEAR(sum, 1.0, 1e-14);
  }
}

TEST(AttentionForward, MatchesNaiveReferenceFloat) {
  // head_dim 32 is read in place, head_dim 8 goes through padded copies.
  for (const AttentionShape a : {AttentionShape{2, 7, 2, 32}, AttentionShape{2, 7, 2, 8}}) {
    const auto qkv = random_vector<double>(a.qkv_size(), 11);
    std::vector<float> qkv_f(qkv.begin(), qkv.end());
    const auto out = run_forward(qkv_f, a);
    const std::vector<double> qkv_rounded(qkv_f.begin(), qkv_f.end());
    const auto ref = naive_attention(qkv_rounded, a.B, a.S, a.nH, a.dh, attention_scale(a.dh));
    for (size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], ref[i], 2e-6) << a.dh;
  }
}

TEST(AttentionForward, IsCausal) {
  const AttentionShape a{2, 8, 2, 8};
  auto qkv = random_vector<double>(a.qkv_size(), 12);
  const auto before = run_forward(qkv, a);
  const int64_t s = 5, C = a.C();
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t f = 0; f < 3 * C; ++f) qkv[static_cast<size_t>((b * a.S + s) * 3 * C + f)] += 0.7;
  const auto after = run_forward(qkv, a);
  for (int64_t b = 0; b < a.B; ++b)
    for (int64_t i = 0; i < a.S; ++i)
      for (int64_t f = 0; f < C; ++f) {
        const size_t idx = static_cast<size_t>((b * a.S + i) * C + f);
        if (i < s) {
          EXPECT_EQ(after[idx], before[idx]) << b << "," << i;
        }
      }
  EXPECT_NE(after[static_cast<size_t>(s * C)], before[static_cast<size_t>(s * C)]);
}

// ---------------------------------------------------------------- attention backward

namespace {

// Gradient of loss = <projection, attention(qkv)> by attention_backward, and by central differences.
void check_attention_gradients(const AttentionShape& a, unsigned seed) {
  auto qkv = random_vector<double>(a.qkv_size(), seed);
  const auto projection = random_vector<double>(a.out_size(), seed + 1);
  std::vector<double> probs;
  run_forward(qkv, a, &probs);
  std::vector<double> dqkv(a.qkv_size(), -7.0), scratch(a.probs_size());  // -7: dqkv must be overwritten
  attention_backward(dqkv.data(), scratch.data(), projection.data(), qkv.data(), probs.data(), a.B, a.S, a.nH, a.dh,
                     attention_scale(a.dh));
  auto loss = [&] { return dot(run_forward(qkv, a), projection); };
  std::vector<double> numeric(qkv.size());
  for (size_t i = 0; i < qkv.size(); ++i) numeric[i] = central_difference(qkv, i, 1e-6, loss);
  const char* names[] = {"q", "k", "v"};
  const size_t C = static_cast<size_t>(a.C());
  for (size_t part = 0; part < 3; ++part)
    EXPECT_LT(relative_error(dqkv, numeric, [&](size_t i) { return (i % (3 * C)) / C == part; }), 1e-6)
        << names[part];
}

}  // namespace

TEST(AttentionBackward, GradientsMatchFiniteDifferencesSmall) { check_attention_gradients({2, 5, 2, 8}, 20); }

// S = 9 and head_dim = 12 are not whole kernel passes: the padded-operand path.
TEST(AttentionBackward, GradientsMatchFiniteDifferencesPaddedShapes) { check_attention_gradients({2, 9, 2, 12}, 30); }

TEST(AttentionBackward, FloatMatchesDouble) {
  for (const AttentionShape a : {AttentionShape{2, 9, 2, 32}, AttentionShape{2, 9, 2, 12}}) {
    const auto qkv = random_vector<double>(a.qkv_size(), 40);
    const auto dout = random_vector<double>(a.out_size(), 41);
    std::vector<double> probs, dqkv(a.qkv_size()), scratch(a.probs_size());
    run_forward(qkv, a, &probs);
    attention_backward(dqkv.data(), scratch.data(), dout.data(), qkv.data(), probs.data(), a.B, a.S, a.nH, a.dh,
                       attention_scale(a.dh));
    std::vector<float> qkv_f(qkv.begin(), qkv.end()), dout_f(dout.begin(), dout.end()), probs_f;
    std::vector<float> dqkv_f(a.qkv_size()), scratch_f(a.probs_size());
    run_forward(qkv_f, a, &probs_f);
    attention_backward(dqkv_f.data(), scratch_f.data(), dout_f.data(), qkv_f.data(), probs_f.data(), a.B, a.S, a.nH,
                       a.dh, static_cast<float>(attention_scale(a.dh)));
    double max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < dqkv.size(); ++i) {
      max_ref = std::max(max_ref, std::abs(dqkv[i]));
      max_diff = std::max(max_diff, std::abs(dqkv[i] - static_cast<double>(dqkv_f[i])));
    }
    EXPECT_LT(max_diff, 1e-5 * max_ref) << a.dh;
  }
}

#ifdef STARFLOW_AVX512_KERNELS
// The 16-lane kernel sums each output over k in the AVX2 kernel's order with the same multiply-add: forward
// and backward give the same bits on either kernel set, for whole passes of 32 columns, a last pass of 16
// (head_dim 48), padded head dims (12) and keys (S = 37), and row blocks with a single-row tail.
TEST(AttentionBackward, Avx512KernelGivesTheAvx2Bits) {
  if (!host_has_avx512()) GTEST_SKIP() << "this host has no AVX-512";
  const CpuIsa saved = cpu_isa();
  for (const AttentionShape a : {AttentionShape{2, 37, 2, 64}, AttentionShape{1, 21, 3, 48}, AttentionShape{2, 9, 2, 12}}) {
    const auto qkv = random_vector<float>(a.qkv_size(), 42), dout = random_vector<float>(a.out_size(), 43);
    std::vector<float> out[2], probs[2], dqkv[2];
    for (int wide = 0; wide < 2; ++wide) {
      set_cpu_isa(wide ? CpuIsa::kAvx512 : CpuIsa::kBaseline);
      std::vector<float> scratch(a.probs_size());
      out[wide] = run_forward(qkv, a, &probs[wide]);
      dqkv[wide].assign(a.qkv_size(), NAN);
      attention_backward(dqkv[wide].data(), scratch.data(), dout.data(), qkv.data(), probs[wide].data(), a.B, a.S,
                         a.nH, a.dh, static_cast<float>(attention_scale(a.dh)));
    }
    EXPECT_EQ(out[0], out[1]) << a.S << " " << a.dh;
    EXPECT_EQ(probs[0], probs[1]) << a.S << " " << a.dh;
    EXPECT_EQ(dqkv[0], dqkv[1]) << a.S << " " << a.dh;
  }
  set_cpu_isa(saved);
}
#endif

// The layer's composition: RoPE on q and k (text split, head_dim 32), attention, and the chained backward
// (attention backward, then the inverse rotation of dq and dk).
TEST(AttentionWithRope, ChainedGradientsMatchFiniteDifferences) {
  const int64_t L = 2, grid = 2, dh = 32, nH = 2, B = 2, S = L + grid * grid, C = nH * dh;
  const AttentionShape a{B, S, nH, dh};
  const auto table = make_rope_table<double>(rope_angles(dh, grid, grid, grid, true, L, true), dh);
  auto qkv = random_vector<double>(a.qkv_size(), 50);
  const auto projection = random_vector<double>(a.out_size(), 51);
  auto forward = [&](std::vector<double>* rotated, std::vector<double>* probs) {
    auto x = qkv;
    rope_rotate(x.data(), B, S, S * 3 * C, 3 * C, 2 * nH, table, 0, false);
    auto out = run_forward(x, a, probs);
    if (rotated) *rotated = x;
    return out;
  };
  std::vector<double> rotated, probs, dqkv(a.qkv_size()), scratch(a.probs_size());
  forward(&rotated, &probs);
  attention_backward(dqkv.data(), scratch.data(), projection.data(), rotated.data(), probs.data(), B, S, nH, dh,
                     attention_scale(dh));
  rope_rotate(dqkv.data(), B, S, S * 3 * C, 3 * C, 2 * nH, table, 0, true);
  auto loss = [&] { return dot(forward(nullptr, nullptr), projection); };
  std::vector<double> numeric(qkv.size());
  for (size_t i = 0; i < qkv.size(); ++i) numeric[i] = central_difference(qkv, i, 1e-6, loss);
  EXPECT_LT(relative_error(dqkv, numeric, [](size_t) { return true; }), 1e-6);
}

// Training-size calls run threaded over (batch, head); each batch row alone is small enough to run on one
// thread. Same arithmetic per (batch, head) either way, so the results must agree bit for bit.
TEST(AttentionThreaded, MatchesPerBatchSerialCalls) {
  const AttentionShape a{4, 33, 4, 32}, one{1, 33, 4, 32};
  const auto qkv = random_vector<float>(a.qkv_size(), 60);
  const auto dout = random_vector<float>(a.out_size(), 61);
  std::vector<float> probs, dqkv(a.qkv_size()), scratch(a.probs_size());
  const auto out = run_forward(qkv, a, &probs);
  attention_backward(dqkv.data(), scratch.data(), dout.data(), qkv.data(), probs.data(), a.B, a.S, a.nH, a.dh,
                     static_cast<float>(attention_scale(a.dh)));
  for (int64_t b = 0; b < a.B; ++b) {
    const std::vector<float> qkv_b(qkv.begin() + b * one.qkv_size(), qkv.begin() + (b + 1) * one.qkv_size());
    const std::vector<float> dout_b(dout.begin() + b * one.out_size(), dout.begin() + (b + 1) * one.out_size());
    std::vector<float> probs_b, dqkv_b(one.qkv_size()), scratch_b(one.probs_size());
    const auto out_b = run_forward(qkv_b, one, &probs_b);
    attention_backward(dqkv_b.data(), scratch_b.data(), dout_b.data(), qkv_b.data(), probs_b.data(), one.B, one.S,
                       one.nH, one.dh, static_cast<float>(attention_scale(one.dh)));
    EXPECT_TRUE(std::equal(out_b.begin(), out_b.end(), out.begin() + b * one.out_size())) << b;
    EXPECT_TRUE(std::equal(probs_b.begin(), probs_b.end(), probs.begin() + b * one.probs_size())) << b;
    EXPECT_TRUE(std::equal(dqkv_b.begin(), dqkv_b.end(), dqkv.begin() + b * one.qkv_size())) << b;
  }
  // And the threaded forward is right, not merely self-consistent.
  const std::vector<double> qkv_d(qkv.begin(), qkv.end());
  const auto ref = naive_attention(qkv_d, a.B, a.S, a.nH, a.dh, attention_scale(a.dh));
  for (size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], ref[i], 2e-6);
}
