// Dense attention (core/ops/cpu/attention_dense.h): the forward against the definition computed naively, every
// gradient (q, k, v, the position bias) against central differences in double, with and without the optional
// bias and key mask, float against double, and results independent of the thread count. Sequences longer than
// one 64-row block and not a multiple of it exercise the block cut.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/ops/cpu/attention_dense.h"
#include "tests/unit/gradcheck.h"

using namespace starflow::core::cpu;
using starflow::tests::gradients_match;
using starflow::tests::numeric_gradient;
using starflow::tests::project;
using starflow::tests::random_vector;

namespace {

struct Shape {
  int64_t B, S, H, dh;
  bool bias, mask;
  int64_t features() const { return B * S * H * dh; }
};

const Shape kShapes[] = {
    {2, 5, 2, 3, true, true}, {1, 7, 1, 4, false, false}, {3, 4, 3, 2, true, false},
    {2, 6, 2, 5, false, true}, {1, 70, 1, 3, true, true},
};

// softmax(scale·q·kᵀ + bias + mask)·v, one (b, h, i) at a time.
std::vector<double> naive_attention(const std::vector<double>& q, const std::vector<double>& k,
                                    const std::vector<double>& v, const double* bias, const double* mask,
                                    const Shape& s, double scale) {
  const int64_t HD = s.H * s.dh;
  std::vector<double> out(s.features());
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h)
      for (int64_t i = 0; i < s.S; ++i) {
        std::vector<double> scores(s.S);
        double max_score = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < s.S; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < s.dh; ++d) dot += q[(b * s.S + i) * HD + h * s.dh + d] * k[(b * s.S + j) * HD + h * s.dh + d];
          scores[j] = scale * dot + (bias ? bias[(h * s.S + i) * s.S + j] : 0.0) + (mask ? mask[b * s.S + j] : 0.0);
          max_score = std::max(max_score, scores[j]);
        }
        double sum = 0;
        for (double& x : scores) sum += (x = std::exp(x - max_score));
        for (int64_t d = 0; d < s.dh; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < s.S; ++j) acc += scores[j] / sum * v[(b * s.S + j) * HD + h * s.dh + d];
          out[(b * s.S + i) * HD + h * s.dh + d] = acc;
        }
      }
  return out;
}

struct Inputs {
  std::vector<double> q, k, v, bias, mask;
};

Inputs draw(const Shape& s, std::mt19937_64& rng) {
  Inputs in;
  in.q = random_vector(s.features(), rng);
  in.k = random_vector(s.features(), rng);
  in.v = random_vector(s.features(), rng);
  in.bias = random_vector(s.H * s.S * s.S, rng, -2, 2);
  // Some keys pushed far down, as T5's padding mask does (not to −inf: a finite value keeps differences defined).
  in.mask = random_vector(s.B * s.S, rng, -1, 1);
  for (size_t j = 0; j < in.mask.size(); j += 3) in.mask[j] = -30;
  return in;
}

std::string describe(const Shape& s) {
  return "B=" + std::to_string(s.B) + " S=" + std::to_string(s.S) + " H=" + std::to_string(s.H) +
         " dh=" + std::to_string(s.dh) + " bias=" + std::to_string(s.bias) + " mask=" + std::to_string(s.mask);
}

}  // namespace

TEST(AttentionDense, ForwardMatchesDefinition) {
  std::mt19937_64 rng(1);
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(describe(s));
    const Inputs in = draw(s, rng);
    const double scale = 0.7;
    const double* bias = s.bias ? in.bias.data() : nullptr;
    const double* mask = s.mask ? in.mask.data() : nullptr;
    std::vector<double> out(s.features()), probs(s.B * s.H * s.S * s.S);
    attention_dense_forward<double>(out.data(), probs.data(), in.q.data(), in.k.data(), in.v.data(), bias, mask, s.B,
                                    s.S, s.H, s.dh, scale);
    const std::vector<double> ref = naive_attention(in.q, in.k, in.v, bias, mask, s, scale);
    for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-12) << i;
    for (int64_t row = 0; row < s.B * s.H * s.S; ++row) {  // every probability row sums to 1
      double sum = 0;
      for (int64_t j = 0; j < s.S; ++j) sum += probs[row * s.S + j];
      ASSERT_NEAR(sum, 1.0, 1e-12);
    }
  }
}

TEST(AttentionDense, GradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(2);
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(describe(s));
    Inputs in = draw(s, rng);
    const double scale = 0.6;
    const std::vector<double> w = random_vector(s.features(), rng);
    const double* mask = s.mask ? in.mask.data() : nullptr;
    std::vector<double> out(s.features()), probs(s.B * s.H * s.S * s.S), scratch(probs.size());
    attention_dense_forward<double>(out.data(), probs.data(), in.q.data(), in.k.data(), in.v.data(),
                                    s.bias ? in.bias.data() : nullptr, mask, s.B, s.S, s.H, s.dh, scale);
    std::vector<double> dq(s.features(), std::nan("")), dk(dq), dv(dq);
    const std::vector<double> dbias0 = random_vector(s.H * s.S * s.S, rng);  // accumulated onto
    std::vector<double> dbias = dbias0;
    attention_dense_backward<double>(dq.data(), dk.data(), dv.data(), s.bias ? dbias.data() : nullptr,
                                     scratch.data(), w.data(), in.q.data(), in.k.data(), in.v.data(), probs.data(),
                                     s.B, s.S, s.H, s.dh, scale);
    auto loss = [&] {
      attention_dense_forward<double>(out.data(), probs.data(), in.q.data(), in.k.data(), in.v.data(),
                                      s.bias ? in.bias.data() : nullptr, mask, s.B, s.S, s.H, s.dh, scale);
      return project(out, w);
    };
    EXPECT_TRUE(gradients_match(dq, numeric_gradient(in.q, loss)));
    EXPECT_TRUE(gradients_match(dk, numeric_gradient(in.k, loss)));
    EXPECT_TRUE(gradients_match(dv, numeric_gradient(in.v, loss)));
    if (s.bias) {
      std::vector<double> delta(dbias.size());
      for (size_t i = 0; i < delta.size(); ++i) delta[i] = dbias[i] - dbias0[i];
      EXPECT_TRUE(gradients_match(delta, numeric_gradient(in.bias, loss)));
    }
  }
}

TEST(AttentionDense, NullGradientBuffersAreSkipped) {
  const Shape s{2, 6, 2, 3, true, true};
  std::mt19937_64 rng(3);
  const Inputs in = draw(s, rng);
  const std::vector<double> dout = random_vector(s.features(), rng);
  std::vector<double> out(s.features()), probs(s.B * s.H * s.S * s.S), scratch(probs.size());
  attention_dense_forward<double>(out.data(), probs.data(), in.q.data(), in.k.data(), in.v.data(), in.bias.data(),
                                  in.mask.data(), s.B, s.S, s.H, s.dh, 0.5);
  auto backward = [&](bool q, bool k, bool v, bool bias) {
    std::vector<double> dq(s.features(), 0), dk(dq), dv(dq), db(s.H * s.S * s.S, 0);
    attention_dense_backward<double>(q ? dq.data() : nullptr, k ? dk.data() : nullptr, v ? dv.data() : nullptr,
                                     bias ? db.data() : nullptr, scratch.data(), dout.data(), in.q.data(),
                                     in.k.data(), in.v.data(), probs.data(), s.B, s.S, s.H, s.dh, 0.5);
    return std::vector<std::vector<double>>{dq, dk, dv, db};
  };
  const auto all = backward(true, true, true, true);
  EXPECT_EQ(backward(true, false, false, false)[0], all[0]);
  EXPECT_EQ(backward(false, true, false, false)[1], all[1]);
  EXPECT_EQ(backward(false, false, true, false)[2], all[2]);
  EXPECT_EQ(backward(false, false, false, true)[3], all[3]);
}

TEST(AttentionDense, FloatMatchesDouble) {
  // The VAE's shape scaled down (one wide head over many pixels) and T5's (several heads, bias and mask).
  for (const Shape& s : {Shape{1, 200, 1, 32, false, false}, Shape{2, 40, 4, 16, true, true}}) {
    SCOPED_TRACE(describe(s));
    std::mt19937_64 rng(4);
    Inputs in = draw(s, rng);
    const std::vector<double> dout = random_vector(s.features(), rng);
    const double scale = 1.0 / std::sqrt(double(s.dh));
    auto run = [&]<class T>(T) {
      auto cast = [](const std::vector<double>& x) { return std::vector<T>(x.begin(), x.end()); };
      const auto q = cast(in.q), k = cast(in.k), v = cast(in.v), bias = cast(in.bias), mask = cast(in.mask);
      const auto g = cast(dout);
      std::vector<T> out(s.features()), probs(s.B * s.H * s.S * s.S), scratch(probs.size());
      std::vector<T> dq(s.features()), dk(dq), dv(dq), db(s.H * s.S * s.S, T(0));
      attention_dense_forward<T>(out.data(), probs.data(), q.data(), k.data(), v.data(),
                                 s.bias ? bias.data() : nullptr, s.mask ? mask.data() : nullptr, s.B, s.S, s.H, s.dh,
                                 T(scale));
      attention_dense_backward<T>(dq.data(), dk.data(), dv.data(), s.bias ? db.data() : nullptr, scratch.data(),
                                  g.data(), q.data(), k.data(), v.data(), probs.data(), s.B, s.S, s.H, s.dh, T(scale));
      std::vector<std::vector<double>> r;
      for (const auto* x : {&out, &dq, &dk, &dv, &db}) r.emplace_back(x->begin(), x->end());
      return r;
    };
    for (auto& x : {&in.q, &in.k, &in.v, &in.bias, &in.mask})
      for (double& e : *x) e = static_cast<float>(e);
    const auto f = run(0.0f), d = run(0.0);
    for (size_t t = 0; t < f.size(); ++t) {
      double diff = 0, scale_ref = 0;
      for (size_t i = 0; i < f[t].size(); ++i) {
        diff = std::max(diff, std::abs(f[t][i] - d[t][i]));
        scale_ref = std::max(scale_ref, std::abs(d[t][i]));
      }
      if (scale_ref > 0) EXPECT_LE(diff / scale_ref, 2e-5) << "output " << t;
    }
  }
}

TEST(AttentionDense, ResultsDoNotDependOnTheThreadCount) {
  const Shape s{1, 300, 2, 24, true, true};
  std::mt19937_64 rng(5);
  const Inputs in = draw(s, rng);
  auto cast = [](const std::vector<double>& x) { return std::vector<float>(x.begin(), x.end()); };
  const auto q = cast(in.q), k = cast(in.k), v = cast(in.v), bias = cast(in.bias), mask = cast(in.mask);
  const auto g = cast(random_vector(s.features(), rng));
  auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<float> out(s.features()), probs(s.B * s.H * s.S * s.S), scratch(probs.size());
    std::vector<float> dq(s.features()), dk(dq), dv(dq), db(s.H * s.S * s.S, 0.f);
    attention_dense_forward<float>(out.data(), probs.data(), q.data(), k.data(), v.data(), bias.data(), mask.data(),
                                   s.B, s.S, s.H, s.dh, 0.2f);
    attention_dense_backward<float>(dq.data(), dk.data(), dv.data(), db.data(), scratch.data(), g.data(), q.data(),
                                    k.data(), v.data(), probs.data(), s.B, s.S, s.H, s.dh, 0.2f);
    omp_set_num_threads(saved);
    for (const auto* x : {&dq, &dk, &dv, &db}) out.insert(out.end(), x->begin(), x->end());
    return out;
  };
  const std::vector<float> one = run(1);
  EXPECT_EQ(one, run(2));
  EXPECT_EQ(one, run(3));
}
