// The T5 encoder's ops (rmsnorm_gain, gated_activation, embedding): every gradient against central differences in
// double, the float path against the double path, and the activations' defining values.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/ops/cpu/embedding.h"
#include "core/ops/cpu/gated_activation.h"
#include "core/ops/cpu/rmsnorm_gain.h"
#include "tests/unit/gradcheck.h"

using namespace starflow::core;
using namespace starflow::core::cpu;
using starflow::tests::gradients_match;
using starflow::tests::numeric_gradient;
using starflow::tests::project;
using starflow::tests::random_vector;

namespace {

constexpr double kGradTol = 1e-6;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

double rel_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff = std::fmax(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::fmax(scale, std::fabs(b[i]));
  }
  return diff / std::fmax(scale, 1e-30);
}

}  // namespace

// ---------------------------------------------------------------- rmsnorm_gain

TEST(RmsNormGain, ForwardIsTheT5Formula) {
  const std::vector<double> x = {1.0, -2.0, 3.0, 0.5}, w = {0.5, 2.0, -1.0, 0.01};
  std::vector<double> out(4), rrms(1);
  rmsnorm_gain_forward<double>(out.data(), rrms.data(), x.data(), w.data(), 1, 4, 1e-6);
  const double rr = 1.0 / std::sqrt((1.0 + 4.0 + 9.0 + 0.25) / 4.0 + 1e-6);
  EXPECT_NEAR(rrms[0], rr, 1e-15);
  for (int j = 0; j < 4; ++j) EXPECT_NEAR(out[j], w[j] * x[j] * rr, 1e-15) << j;  // a plain gain, no 1 + w
}

TEST(RmsNormGain, Gradients) {
  const int64_t R = 5, C = 12;
  std::mt19937_64 rng(71);
  std::vector<double> x = random_vector(R * C, rng), w = random_vector(C, rng, 0.2, 2.0);
  const std::vector<double> dout = random_vector(R * C, rng);
  std::vector<double> out(R * C), rrms(R), din(R * C, kNaN), dw(C, 0.0);
  rmsnorm_gain_forward<double>(out.data(), rrms.data(), x.data(), w.data(), R, C, 1e-6);
  rmsnorm_gain_backward<double>(din.data(), dw.data(), dout.data(), x.data(), rrms.data(), w.data(), R, C);
  auto loss = [&] {
    rmsnorm_gain_forward<double>(out.data(), rrms.data(), x.data(), w.data(), R, C, 1e-6);
    return project(out, dout);
  };
  EXPECT_TRUE(gradients_match(din, numeric_gradient(x, loss), kGradTol));
  EXPECT_TRUE(gradients_match(dw, numeric_gradient(w, loss), kGradTol));
  // accumulate_din adds to what is there; dw accumulates always.
  std::vector<double> din2 = din, dw2 = dw;
  rmsnorm_gain_backward<double>(din2.data(), dw2.data(), dout.data(), x.data(), rrms.data(), w.data(), R, C, true);
  for (size_t i = 0; i < din.size(); ++i) EXPECT_NEAR(din2[i], 2 * din[i], 1e-12);
  for (size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(dw2[i], 2 * dw[i], 1e-12);
}

TEST(RmsNormGain, FloatMatchesDouble) {
  const int64_t R = 300, C = 130;  // above the OpenMP threshold, dw over several column blocks
  std::mt19937_64 rng(72);
  const std::vector<double> x = random_vector(R * C, rng, -3, 3), w = random_vector(C, rng, -2, 2);
  const std::vector<double> dout = random_vector(R * C, rng);
  std::vector<double> out(R * C), rrms(R), din(R * C), dw(C, 0.0);
  rmsnorm_gain_forward<double>(out.data(), rrms.data(), x.data(), w.data(), R, C, 1e-6);
  rmsnorm_gain_backward<double>(din.data(), dw.data(), dout.data(), x.data(), rrms.data(), w.data(), R, C);
  const auto xf = to_float(x), wf = to_float(w), df = to_float(dout);
  std::vector<float> outf(R * C), rrmsf(R), dinf(R * C), dwf(C, 0.f);
  rmsnorm_gain_forward<float>(outf.data(), rrmsf.data(), xf.data(), wf.data(), R, C, 1e-6f);
  rmsnorm_gain_backward<float>(dinf.data(), dwf.data(), df.data(), xf.data(), rrmsf.data(), wf.data(), R, C);
  EXPECT_LT(rel_diff(outf, out), 1e-6);
  EXPECT_LT(rel_diff(dinf, din), 1e-5);
  EXPECT_LT(rel_diff(dwf, dw), 1e-5);
}

// ---------------------------------------------------------------- gated_activation

TEST(GatedActivation, ForwardValues) {
  // gelu_new(1) = 0.5·(1 + tanh(√(2/π)·1.044715)) = 0.8411919906082768; gelu(1) = Φ(1) = 0.8413447460685429.
  const std::vector<double> x = {-3.0, -1.0, 0.0, 1.0, 2.5}, gate = {2.0, -1.0, 5.0, 1.0, 0.5};
  std::vector<double> out(5);
  gated_activation_forward<double>(out.data(), x.data(), nullptr, 5, Activation::kGeluTanh);
  EXPECT_NEAR(out[3], 0.8411919906082768, 1e-15);
  for (int i = 0; i < 5; ++i) {
    const double u = std::sqrt(2.0 / M_PI) * (x[i] + 0.044715 * x[i] * x[i] * x[i]);
    EXPECT_NEAR(out[i], 0.5 * x[i] * (1.0 + std::tanh(u)), 1e-15) << x[i];
  }
  gated_activation_forward<double>(out.data(), x.data(), nullptr, 5, Activation::kGeluErf);
  EXPECT_NEAR(out[3], 0.8413447460685429, 1e-15);
  gated_activation_forward<double>(out.data(), x.data(), gate.data(), 5, Activation::kRelu);
  EXPECT_EQ(out, (std::vector<double>{0.0, 0.0, 0.0, 1.0, 1.25}));
  gated_activation_forward<double>(out.data(), x.data(), gate.data(), 5, Activation::kGeluTanh);
  EXPECT_NEAR(out[3], 0.8411919906082768, 1e-15);
  EXPECT_NEAR(out[0], 2.0 * 0.5 * -3.0 * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (-3.0 - 0.044715 * 27.0))), 1e-15);
}

TEST(GatedActivation, GradientsOfEveryActivationGatedAndNot) {
  const int64_t n = 64;
  for (const Activation act : {Activation::kGeluTanh, Activation::kGeluErf, Activation::kRelu}) {
    for (const bool gated : {true, false}) {
      std::mt19937_64 rng(80 + static_cast<int>(act));
      std::vector<double> a = random_vector(n, rng, -4, 4), gate = random_vector(n, rng, -2, 2);
      for (double& v : a)  // relu's kink: keep finite differences away from 0
        if (std::fabs(v) < 1e-3) v = 0.5;
      const std::vector<double> w = random_vector(n, rng);
      std::vector<double> out(n), da(n, kNaN), dgate(n, kNaN);
      const double* g = gated ? gate.data() : nullptr;
      gated_activation_backward<double>(da.data(), gated ? dgate.data() : nullptr, w.data(), a.data(), g, n, act);
      auto loss = [&] {
        gated_activation_forward<double>(out.data(), a.data(), gated ? gate.data() : nullptr, n, act);
        return project(out, w);
      };
      EXPECT_TRUE(gradients_match(da, numeric_gradient(a, loss), kGradTol)) << activation_name(act) << " gated " << gated;
      if (gated) {
        EXPECT_TRUE(gradients_match(dgate, numeric_gradient(gate, loss), kGradTol)) << activation_name(act);
      }
    }
  }
}

TEST(GatedActivation, FloatMatchesDoubleAndInPlace) {
  const int64_t n = 40000;  // above the OpenMP threshold
  std::mt19937_64 rng(85);
  const std::vector<double> a = random_vector(n, rng, -6, 6), gate = random_vector(n, rng), dout = random_vector(n, rng);
  for (const Activation act : {Activation::kGeluTanh, Activation::kGeluErf, Activation::kRelu}) {
    std::vector<double> out(n), da(n), dg(n);
    gated_activation_forward<double>(out.data(), a.data(), gate.data(), n, act);
    gated_activation_backward<double>(da.data(), dg.data(), dout.data(), a.data(), gate.data(), n, act);
    const auto af = to_float(a), gf = to_float(gate), df = to_float(dout);
    std::vector<float> outf = af, daf(n), dgf(n);  // in place: out aliases a, as the encoder calls it
    gated_activation_forward<float>(outf.data(), outf.data(), gf.data(), n, act);
    gated_activation_backward<float>(daf.data(), dgf.data(), df.data(), af.data(), gf.data(), n, act);
    // float's tanh form is written without cancellation (gated_activation.cpp): within ~3 float roundings.
    const double tol = act == Activation::kGeluTanh ? 3e-7 : 1e-6;
    EXPECT_LT(rel_diff(outf, out), tol) << activation_name(act);
    EXPECT_LT(rel_diff(daf, da), tol) << activation_name(act);
    EXPECT_LT(rel_diff(dgf, dg), tol) << activation_name(act);
  }
}

// ---------------------------------------------------------------- embedding

TEST(Embedding, ForwardGathersRowsAndBackwardSumsRepeats) {
  const int64_t V = 7, D = 70, n = 9;  // D over two column blocks
  std::mt19937_64 rng(90);
  std::vector<double> table = random_vector(V * D, rng);
  const std::vector<int64_t> ids = {3, 0, 6, 3, 3, 1, 0, 5, 6};
  const std::vector<double> w = random_vector(n * D, rng);
  std::vector<double> out(n * D), dtable(V * D, 0.0);
  embedding_forward<double>(out.data(), ids.data(), table.data(), n, D);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < D; ++j) ASSERT_EQ(out[i * D + j], table[ids[i] * D + j]);
  embedding_backward<double>(dtable.data(), w.data(), ids.data(), n, D);
  auto loss = [&] {
    embedding_forward<double>(out.data(), ids.data(), table.data(), n, D);
    return project(out, w);
  };
  EXPECT_TRUE(gradients_match(dtable, numeric_gradient(table, loss), kGradTol));
  for (int64_t j = 0; j < D; ++j) EXPECT_EQ(dtable[2 * D + j], 0.0);  // an unused row gets no gradient
}

TEST(Embedding, FloatMatchesDouble) {
  const int64_t V = 50, D = 300, n = 400;
  std::mt19937_64 rng(91);
  std::vector<double> table = random_vector(V * D, rng), dout = random_vector(n * D, rng);
  for (double& v : table) v = static_cast<float>(v);  // both sides see the same values
  for (double& v : dout) v = static_cast<float>(v);
  std::vector<int64_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int64_t>(rng() % V);
  std::vector<double> out(n * D), dtable(V * D, 0.0);
  embedding_forward<double>(out.data(), ids.data(), table.data(), n, D);
  embedding_backward<double>(dtable.data(), dout.data(), ids.data(), n, D);
  const auto tf = to_float(table), df = to_float(dout);
  std::vector<float> outf(n * D), dtf(V * D, 0.f);
  embedding_forward<float>(outf.data(), ids.data(), tf.data(), n, D);
  embedding_backward<float>(dtf.data(), df.data(), ids.data(), n, D);
  EXPECT_EQ(rel_diff(outf, out), 0.0);  // a copy
  EXPECT_LT(rel_diff(dtf, dtable), 1e-6);
}
