// Whole-model checks on tiny configs: finite-difference gradients (double), block invertibility,
// causality, and the loss bookkeeping.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/models/starflow_model.h"
#include "core/random.h"

using namespace starflow::core;

namespace {

FlowConfig tiny_config(bool conditional, SeqOrder order = SeqOrder::L2R, int64_t patch = 1) {
  FlowConfig c;
  c.in_channels = 2;
  c.img_size = 4;
  c.patch_size = patch;
  c.num_blocks = 3;
  c.layers_per_block = {1, 1, 2};
  c.seq_order = order;
  if (conditional) {
    c.channels = 40;  // head_dim 20: the smallest with the 8 text-axis RoPE slots
    c.head_dim = 20;
    c.txt_size = 2;
    c.txt_dim = 3;
  } else {
    c.channels = 16;
    c.head_dim = 8;
  }
  return c;
}

// Default init plus a perturbation, so proj_out weight and final_norm are not trivially zero.
template <class T>
void randomise(StarFlowModel<T>& m, uint64_t seed, double scale = 0.05) {
  m.init_parameters(seed);
  Rng rng(seed + 1);
  for (T& p : m.parameters()) p += T(scale * rng.normal());
}

template <class T>
std::vector<T> random_vector(size_t n, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<T> v(n);
  for (T& x : v) x = T(scale * rng.normal());
  return v;
}

struct Inputs {
  std::vector<double> x, y;
};

Inputs make_inputs(const FlowConfig& c, int64_t B, uint64_t seed) {
  Inputs in;
  in.x = random_vector<double>(B * c.in_channels * c.img_size * c.img_size, seed);
  if (c.conditional()) in.y = random_vector<double>(B * c.txt_size * c.txt_dim, seed + 7);
  return in;
}

void check_model_gradients(const FlowConfig& c) {
  const int64_t B = 2;
  const double lambda = 0.05;  // large enough that the regulariser's gradient is visible
  StarFlowModel<double> m(c);
  randomise(m, 11);
  Inputs in = make_inputs(c, B, 5);
  const double* y = c.conditional() ? in.y.data() : nullptr;
  m.zero_gradients();
  m.forward(in.x.data(), y, B, lambda);
  std::vector<double> dx(in.x.size());
  m.backward(dx.data());
  const std::vector<double> grads = m.gradients();

  auto loss_at = [&]() { return m.forward(in.x.data(), y, B, lambda).total; };
  const double h = 1e-6;
  auto numeric = [&](double& slot) {
    const double saved = slot;
    slot = saved + h;
    const double lp = loss_at();
    slot = saved - h;
    const double lm = loss_at();
    slot = saved;
    return (lp - lm) / (2 * h);
  };
  Rng pick(3);
  double worst = 0;
  std::string worst_name;
  for (const ParameterView& v : m.layout().views()) {
    double max_num = 0, max_err = 0;
    const int probes = std::min<int64_t>(v.size, 6);
    for (int i = 0; i < probes; ++i) {
      const int64_t idx = v.offset + static_cast<int64_t>(pick.uniform() * v.size);
      const double num = numeric(m.parameters()[idx]);
      max_num = std::max(max_num, std::abs(num));
      max_err = std::max(max_err, std::abs(num - grads[idx]));
    }
    const double rel = max_err / std::max(max_num, 1e-8);
    if (rel > worst) worst = rel, worst_name = v.name;
    EXPECT_LT(rel, 1e-5) << v.name << " analytic vs numeric gradient";
  }
  double max_num = 0, max_err = 0;
  for (int i = 0; i < 12; ++i) {
    const int64_t idx = static_cast<int64_t>(pick.uniform() * in.x.size());
    const double num = numeric(in.x[idx]);
    max_num = std::max(max_num, std::abs(num));
    max_err = std::max(max_err, std::abs(num - dx[idx]));
  }
  EXPECT_LT(max_err / max_num, 1e-5) << "input gradient";
}

// σ and μ of each (permuted) token of block k, recovered from its forward results:
// logdet = −log σ and z = (v − μ)/σ.
void block_sigma_mu(const StarFlowModel<double>& m, int64_t k, std::vector<double>& sigma, std::vector<double>& mu) {
  const auto& c = m.config();
  const int64_t B = m.batch(), T = c.tokens(), D = c.token_dim();
  const bool flip = c.block_flips(k);
  sigma.resize(B * T * D);
  mu.resize(B * T * D);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t src = flip ? T - 1 - t : t;
      for (int64_t d = 0; d < D; ++d) {
        const int64_t i = (b * T + t) * D + d, r = (b * T + src) * D + d;
        sigma[i] = std::exp(-m.logdet(k)[i]);
        mu[i] = m.outputs(k)[r] - m.outputs(k + 1)[r] * sigma[i];
      }
    }
}

}  // namespace

TEST(ModelGradients, UnconditionalL2R) { check_model_gradients(tiny_config(false)); }
TEST(ModelGradients, TextConditionedTopOnly) { check_model_gradients(tiny_config(true)); }
TEST(ModelGradients, ConditionedEveryBlockR2LPatch2) {
  FlowConfig c = tiny_config(true, SeqOrder::R2L, 2);
  c.cond_top_only = false;
  check_model_gradients(c);
}

TEST(ModelLoss, PartsAreConsistent) {
  const FlowConfig c = tiny_config(true);
  StarFlowModel<double> m(c);
  randomise(m, 2);
  Inputs in = make_inputs(c, 3, 9);
  const LossParts l = m.forward(in.x.data(), in.y.data(), 3, 1e-4);
  EXPECT_NEAR(l.nll, l.z + l.logdet, 1e-14);
  EXPECT_NEAR(l.total, l.nll + 1e-4 * l.latent_norm, 1e-14);
  double xx = 0;
  for (double v : in.x) xx += v * v;
  // latent_norm includes the input itself (outputs[0]) and excludes the final z.
  double expected = xx / in.x.size();
  for (int64_t k = 1; k < c.num_blocks; ++k) {
    double s = 0;
    for (double v : m.outputs(k)) s += v * v;
    expected += s / in.x.size();
  }
  EXPECT_NEAR(l.latent_norm, expected, 1e-12);
}

// Perturbing the permuted token t of a block's input leaves σ, μ of tokens ≤ t unchanged (SOS shift:
// token t is transformed by a function of tokens < t) and changes some token after t.
TEST(ModelCausality, EachBlockIsAutoregressiveInItsOwnOrder) {
  const FlowConfig c = tiny_config(true, SeqOrder::L2R);
  const int64_t B = 1, T = c.tokens(), D = c.token_dim();
  StarFlowModel<double> m(c);
  randomise(m, 4, 0.2);
  Inputs in = make_inputs(c, B, 1);
  m.forward(in.x.data(), in.y.data(), B, 0);
  for (int64_t k = 0; k < c.num_blocks; ++k) {
    std::vector<double> s0, mu0;
    block_sigma_mu(m, k, s0, mu0);
    for (int64_t t : {int64_t(0), T / 2, T - 2}) {
      // Perturb block k's input token at permuted position t, i.e. raster token t or T−1−t.
      std::vector<double> u = m.outputs(k);  // block k's input, perturbed below
      const int64_t raster = c.block_flips(k) ? T - 1 - t : t;
      for (int64_t d = 0; d < D; ++d) u[raster * D + d] += 0.3;
      BlockActivations<CpuBackend<double>> acts;
      std::vector<double> out(u.size()), logdet(u.size());
      m.block(k).forward(m.parameters().data(), acts, u.data(), in.y.data(), out.data(), logdet.data(), B,
                         m.rope_table(m.block(k).conditioned()));
      double changed_after = 0;
      for (int64_t tt = 0; tt < T; ++tt)
        for (int64_t d = 0; d < D; ++d) {
          const double diff = std::abs(logdet[tt * D + d] - m.logdet(k)[tt * D + d]);
          if (tt <= t) EXPECT_EQ(diff, 0.0) << "block " << k << " token " << tt << " after perturbing " << t;
          else changed_after = std::max(changed_after, diff);
        }
      EXPECT_GT(changed_after, 1e-8) << "block " << k << ": perturbing token " << t << " changed nothing after it";
    }
  }
}

// Each block is invertible: given its output, the fixed-point iteration x_t ← z_t·σ_t(x_{<t}) + μ_t(x_{<t})
// (token t depends only on tokens before it) recovers the input exactly after T sweeps.
TEST(ModelInvertibility, EveryBlockRecoversItsInput) {
  for (bool conditional : {false, true}) {
    const FlowConfig c = tiny_config(conditional, conditional ? SeqOrder::L2R : SeqOrder::R2L);
    const int64_t B = 2, T = c.tokens(), D = c.token_dim();
    StarFlowModel<double> m(c);
    randomise(m, 8, 0.2);
    Inputs in = make_inputs(c, B, 3);
    const double* y = conditional ? in.y.data() : nullptr;
    m.forward(in.x.data(), y, B, 0);
    for (int64_t k = 0; k < c.num_blocks; ++k) {
      const std::vector<double>& target = m.outputs(k + 1);
      const bool flip = c.block_flips(k);
      std::vector<double> x(target.size(), 0.0), out(x.size()), logdet(x.size());
      BlockActivations<CpuBackend<double>> acts;
      for (int64_t sweep = 0; sweep < T; ++sweep) {
        m.block(k).forward(m.parameters().data(), acts, x.data(), y, out.data(), logdet.data(), B,
                           m.rope_table(m.block(k).conditioned()));
        for (int64_t b = 0; b < B; ++b)
          for (int64_t t = 0; t < T; ++t) {
            const int64_t r = b * T + (flip ? T - 1 - t : t);  // raster row of permuted token t
            for (int64_t d = 0; d < D; ++d) {
              const double sigma = std::exp(-logdet[(b * T + t) * D + d]);
              const double mu = x[r * D + d] - out[r * D + d] * sigma;
              x[r * D + d] = target[r * D + d] * sigma + mu;
            }
          }
      }
      double err = 0;
      for (size_t i = 0; i < x.size(); ++i) err = std::max(err, std::abs(x[i] - m.outputs(k)[i]));
      EXPECT_LT(err, 1e-12) << "block " << k << (conditional ? " (conditional)" : "");
    }
  }
}

TEST(ModelLayout, OfficialNamesAndSizes) {
  FlowConfig c = tiny_config(true);
  StarFlowModel<float> m(c);
  const auto& L = m.layout();
  EXPECT_NE(L.find("blocks.2.proj_txt.weight"), nullptr);
  EXPECT_EQ(L.find("blocks.1.proj_txt.weight"), nullptr);  // cond_top_only
  EXPECT_EQ(L.at("blocks.2.attn_blocks.1.mlp.main.0.weight").shape, (Shape{160, 40}));
  EXPECT_EQ(L.at("blocks.0.sos_embed").shape, (Shape{1, 1, 2}));
  EXPECT_EQ(L.at("blocks.0.proj_out.weight").shape, (Shape{4, 40}));
  for (const auto& v : L.views()) EXPECT_EQ(v.offset % 16, 0) << v.name;
}

// Layer recompute keeps one layer's activations per block and recomputes the others in backward: the loss, every
// parameter gradient and the input gradient are the same bits as without it, and the forward keeps less.
TEST(ModelRecompute, SameBitsLessMemory) {
  for (bool conditional : {false, true}) {
    FlowConfig c = tiny_config(conditional);
    c.layers_per_block = {2, 1, 3};
    const int64_t B = 3;
    StarFlowModel<float> plain(c), recomputed(c);
    randomise(plain, 21);
    recomputed.parameters() = plain.parameters();
    recomputed.set_recompute(true);
    const Inputs in = make_inputs(c, B, 4);
    const std::vector<float> x(in.x.begin(), in.x.end()), y(in.y.begin(), in.y.end());
    const float* yp = conditional ? y.data() : nullptr;
    std::vector<float> dx_plain(x.size()), dx_recomputed(x.size());
    const LossParts a = plain.forward(x.data(), yp, B, 1e-4);
    plain.backward(dx_plain.data());
    const LossParts b = recomputed.forward(x.data(), yp, B, 1e-4);
    const int64_t kept_plain = plain.activation_bytes(), kept_recomputed = recomputed.activation_bytes();
    recomputed.backward(dx_recomputed.data());
    EXPECT_EQ(a.total, b.total);
    EXPECT_EQ(0, std::memcmp(plain.gradients().data(), recomputed.gradients().data(),
                             sizeof(float) * plain.gradients().size()));
    EXPECT_EQ(0, std::memcmp(dx_plain.data(), dx_recomputed.data(), sizeof(float) * x.size()));
    EXPECT_LT(kept_recomputed, kept_plain) << "conditional " << conditional;
    // Switching it off again gives the plain model's bits too (the per-layer buffers come back).
    recomputed.set_recompute(false);
    recomputed.zero_gradients();
    recomputed.forward(x.data(), yp, B, 1e-4);
    recomputed.backward(dx_recomputed.data());
    EXPECT_EQ(0, std::memcmp(plain.gradients().data(), recomputed.gradients().data(),
                             sizeof(float) * plain.gradients().size()));
  }
}
