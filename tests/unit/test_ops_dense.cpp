// Dense CPU ops (gemm, linear, layernorm, rmsnorm, gelu): gemm against a naive loop on both backends,
// every gradient against central differences in double, and the float path against the double path.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/ops/cpu/gelu.h"
#include "core/build_config.h"
#include "core/ops/cpu/cpu_isa.h"
#include "core/ops/cpu/gemm.h"
#include "core/ops/cpu/layernorm.h"
#include "core/ops/cpu/linear.h"
#include "core/ops/cpu/rmsnorm.h"
#include "core/ops/cpu/rmsnorm_gain.h"
#include "tests/unit/gradcheck.h"

using namespace starflow::core::cpu;
using starflow::tests::gradients_match;
using starflow::tests::numeric_gradient;
using starflow::tests::project;
using starflow::tests::random_vector;

namespace {

constexpr double kGradTol = 1e-6;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Restores the process-wide gemm backend, so one test cannot change what the next one measures.
class ScopedGemmBackend {
 public:
  explicit ScopedGemmBackend(GemmBackend b) : saved_(gemm_backend()) { set_gemm_backend(b); }
  ~ScopedGemmBackend() { set_gemm_backend(saved_); }
  ScopedGemmBackend(const ScopedGemmBackend&) = delete;
  ScopedGemmBackend& operator=(const ScopedGemmBackend&) = delete;

 private:
  GemmBackend saved_;
};

const GemmBackend kBackends[] = {GemmBackend::openblas, GemmBackend::onednn, GemmBackend::eigen};
const char* backend_name(GemmBackend b) { return gemm_backend_name(b); }

template <class T>
std::vector<T> cast_vector(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
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

std::vector<double> minus(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

// ---------------------------------------------------------------- gemm

// Checks one gemm call against a naive double loop. Operands are stored with padded leading dimensions;
// the padding of C holds a sentinel that must survive, and with beta = 0 C starts as NaN, which must not
// leak into the result.
template <class T>
void check_gemm(GemmBackend backend, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                double beta, std::mt19937_64& rng) {
  const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K;
  const int64_t b_rows = tb ? N : K, b_cols = tb ? K : N;
  const int64_t lda = a_cols + 3, ldb = b_cols + 5, ldc = N + 2;
  const std::vector<double> a = random_vector(a_rows * lda, rng);
  const std::vector<double> b = random_vector(b_rows * ldb, rng);
  std::vector<double> c0 = random_vector(M * ldc, rng);
  const double sentinel = 12345.0;
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = N; j < ldc; ++j) c0[i * ldc + j] = sentinel;
    if (beta == 0.0)
      for (int64_t j = 0; j < N; ++j) c0[i * ldc + j] = kNaN;
  }

  std::vector<double> ref(M * N);
  double scale = 0.0;
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const double av = ta ? a[k * lda + i] : a[i * lda + k];
        const double bv = tb ? b[j * ldb + k] : b[k * ldb + j];
        s += av * bv;
      }
      ref[i * N + j] = alpha * s + (beta == 0.0 ? 0.0 : beta * c0[i * ldc + j]);
      scale = std::fmax(scale, std::fabs(ref[i * N + j]));
    }
  }

  std::vector<T> at = cast_vector<T>(a), bt = cast_vector<T>(b), ct = cast_vector<T>(c0);
  {
    ScopedGemmBackend scoped(backend);
    gemm<T>(ta, tb, M, N, K, static_cast<T>(alpha), at.data(), lda, bt.data(), ldb, static_cast<T>(beta),
            ct.data(), ldc);
  }
  double max_err = 0.0;
  bool sentinel_ok = true;
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      const double err = std::fabs(static_cast<double>(ct[i * ldc + j]) - ref[i * N + j]);
      max_err = std::isnan(err) ? err : std::fmax(max_err, err);
      if (std::isnan(err)) break;
    }
    for (int64_t j = N; j < ldc; ++j) sentinel_ok = sentinel_ok && ct[i * ldc + j] == static_cast<T>(sentinel);
  }
  // float: ~√K·ε relative to the largest entry; double leaves room for the same bound at 2⁻⁵².
  const double tol = sizeof(T) == 4 ? 1e-5 : 1e-13;
  EXPECT_LE(max_err / scale, tol) << backend_name(backend) << " T=" << (sizeof(T) == 4 ? "float" : "double")
                                  << " ta=" << ta << " tb=" << tb << " M=" << M << " N=" << N << " K=" << K
                                  << " beta=" << beta;
  EXPECT_TRUE(sentinel_ok) << "gemm wrote outside the M×N block of C (" << backend_name(backend) << ")";
}

template <class T>
void check_gemm_all_cases(std::mt19937_64& rng) {
  struct Dims {
    int64_t M, N, K;
  };
  // A tiny odd shape and one large enough to take the blocked, packed kernels of both libraries.
  const Dims dims[] = {{7, 5, 9}, {67, 45, 130}};
  for (GemmBackend backend : kBackends)
    for (const Dims& d : dims)
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (double beta : {0.0, 1.0, 0.5}) check_gemm<T>(backend, ta, tb, d.M, d.N, d.K, 0.75, beta, rng);
}

TEST(DenseGemm, MatchesNaiveLoopFloat) {
  std::mt19937_64 rng(1);
  check_gemm_all_cases<float>(rng);
}

TEST(DenseGemm, MatchesNaiveLoopDouble) {
  std::mt19937_64 rng(2);
  check_gemm_all_cases<double>(rng);
}

TEST(DenseGemm, EmptyInnerDimensionOnlyScalesC) {
  for (GemmBackend backend : kBackends) {
    ScopedGemmBackend scoped(backend);
    std::vector<double> c = {1.0, 2.0, 3.0, 4.0};
    gemm<double>(false, false, 2, 2, 0, 1.0, nullptr, 1, nullptr, 2, 0.5, c.data(), 2);
    EXPECT_EQ(c, (std::vector<double>{0.5, 1.0, 1.5, 2.0})) << backend_name(backend);
    std::vector<double> nan_c(4, kNaN);
    gemm<double>(false, false, 2, 2, 0, 1.0, nullptr, 1, nullptr, 2, 0.0, nan_c.data(), 2);
    EXPECT_EQ(nan_c, (std::vector<double>(4, 0.0))) << backend_name(backend);
  }
}

// The default follows the kernel set (oneDNN's AVX-512 kernels where the host has them, OpenBLAS elsewhere;
// STARFLOW_GEMM unset, as ctest runs it), and the switch is global.
TEST(DenseGemm, BackendSwitchIsGlobalAndDefaultFollowsTheHost) {
  const GemmBackend want = starflow::core::cpu::use_avx512() ? GemmBackend::onednn : GemmBackend::openblas;
  EXPECT_EQ(gemm_backend(), want);
  {
    ScopedGemmBackend scoped(GemmBackend::eigen);
    EXPECT_EQ(gemm_backend(), GemmBackend::eigen);
  }
  EXPECT_EQ(gemm_backend(), want);
}

// ---------------------------------------------------------------- linear

// Gradients of L = Σ w⊙linear(in) w.r.t. in, weight and bias, with pre-filled gradient buffers to prove
// that dW and db accumulate and that din is overwritten (from NaN) or accumulated as asked.
void check_linear_gradients(bool with_bias, bool accumulate_din, GemmBackend backend) {
  SCOPED_TRACE(testing::Message() << "bias=" << with_bias << " accumulate_din=" << accumulate_din << " backend="
                                  << backend_name(backend));
  ScopedGemmBackend scoped(backend);
  const int64_t M = 5, K = 7, N = 6;
  std::mt19937_64 rng(10 + 2 * with_bias + accumulate_din);
  std::vector<double> in = random_vector(M * K, rng), weight = random_vector(N * K, rng);
  std::vector<double> bias = random_vector(N, rng), w = random_vector(M * N, rng);
  std::vector<double> out(M * N);
  const double* bias_ptr = with_bias ? bias.data() : nullptr;

  const std::vector<double> din0 = accumulate_din ? random_vector(M * K, rng) : std::vector<double>(M * K, kNaN);
  const std::vector<double> dweight0 = random_vector(N * K, rng), dbias0 = random_vector(N, rng);
  std::vector<double> din = din0, dweight = dweight0, dbias = dbias0;
  linear_backward<double>(din.data(), dweight.data(), with_bias ? dbias.data() : nullptr, w.data(), in.data(),
                          weight.data(), M, K, N, accumulate_din);

  auto loss = [&] {
    linear_forward<double>(out.data(), in.data(), weight.data(), bias_ptr, M, K, N);
    return project(out, w);
  };
  EXPECT_TRUE(gradients_match(accumulate_din ? minus(din, din0) : din, numeric_gradient(in, loss), kGradTol));
  EXPECT_TRUE(gradients_match(minus(dweight, dweight0), numeric_gradient(weight, loss), kGradTol));
  if (with_bias) {
    EXPECT_TRUE(gradients_match(minus(dbias, dbias0), numeric_gradient(bias, loss), kGradTol));
  } else {
    EXPECT_EQ(dbias, dbias0) << "dbias touched although no bias buffer was given";
  }
}

TEST(DenseLinear, GradientsWithBias) {
  for (GemmBackend backend : kBackends) {
    check_linear_gradients(true, false, backend);
    check_linear_gradients(true, true, backend);
  }
}

TEST(DenseLinear, GradientsWithoutBias) {
  for (GemmBackend backend : kBackends) {
    check_linear_gradients(false, false, backend);
    check_linear_gradients(false, true, backend);
  }
}

TEST(DenseLinear, NullGradientBuffersAreSkipped) {
  const int64_t M = 4, K = 3, N = 5;
  std::mt19937_64 rng(20);
  std::vector<double> in = random_vector(M * K, rng), weight = random_vector(N * K, rng);
  std::vector<double> dout = random_vector(M * N, rng);
  std::vector<double> din_full(M * K), dweight_full(N * K, 0.0), dbias_full(N, 0.0);
  linear_backward<double>(din_full.data(), dweight_full.data(), dbias_full.data(), dout.data(), in.data(),
                          weight.data(), M, K, N);
  // Only dW (din skipped), then only din (dW and db skipped): each must equal the full call's result.
  std::vector<double> dweight(N * K, 0.0);
  linear_backward<double>(nullptr, dweight.data(), nullptr, dout.data(), in.data(), weight.data(), M, K, N);
  EXPECT_EQ(dweight, dweight_full);
  std::vector<double> din(M * K, kNaN);
  linear_backward<double>(din.data(), nullptr, nullptr, dout.data(), in.data(), weight.data(), M, K, N);
  EXPECT_EQ(din, din_full);
}

TEST(DenseLinear, FloatForwardAndBackwardMatchDouble) {
  const int64_t M = 33, K = 48, N = 40;
  std::mt19937_64 rng(21);
  const std::vector<double> in = random_vector(M * K, rng), weight = random_vector(N * K, rng);
  const std::vector<double> bias = random_vector(N, rng), dout = random_vector(M * N, rng);
  std::vector<double> out(M * N), din(M * K), dweight(N * K, 0.0), dbias(N, 0.0);
  linear_forward<double>(out.data(), in.data(), weight.data(), bias.data(), M, K, N);
  linear_backward<double>(din.data(), dweight.data(), dbias.data(), dout.data(), in.data(), weight.data(), M, K, N);

  const auto in_f = cast_vector<float>(in), weight_f = cast_vector<float>(weight);
  const auto bias_f = cast_vector<float>(bias), dout_f = cast_vector<float>(dout);
  std::vector<float> out_f(M * N), din_f(M * K), dweight_f(N * K, 0.0f), dbias_f(N, 0.0f);
  linear_forward<float>(out_f.data(), in_f.data(), weight_f.data(), bias_f.data(), M, K, N);
  linear_backward<float>(din_f.data(), dweight_f.data(), dbias_f.data(), dout_f.data(), in_f.data(),
                         weight_f.data(), M, K, N);
  EXPECT_LT(rel_diff(out_f, out), 1e-6);
  EXPECT_LT(rel_diff(din_f, din), 1e-6);
  EXPECT_LT(rel_diff(dweight_f, dweight), 1e-6);
  EXPECT_LT(rel_diff(dbias_f, dbias), 1e-6);
}

// ---------------------------------------------------------------- layernorm

constexpr double kLayerNormEps = 1e-5;

// Inputs with a mean offset (so the centring matters) and a γ away from 1 (so it is not invisible).
struct NormInputs {
  std::vector<double> in, gamma, beta, dout;
};
NormInputs make_norm_inputs(int64_t rows, int64_t C, std::mt19937_64& rng) {
  NormInputs x;
  x.in = random_vector(rows * C, rng, 1.0, 3.0);
  x.gamma = random_vector(C, rng, 0.5, 1.5);
  x.beta = random_vector(C, rng);
  x.dout = random_vector(rows * C, rng);
  return x;
}

void check_layernorm_gradients(bool accumulate_din) {
  SCOPED_TRACE(testing::Message() << "accumulate_din=" << accumulate_din);
  // C = 70 spans two column blocks of the dγ/dβ reduction, the second one partial.
  const int64_t rows = 3, C = 70;
  std::mt19937_64 rng(30 + accumulate_din);
  NormInputs x = make_norm_inputs(rows, C, rng);
  std::vector<double> out(rows * C), mean(rows), rstd(rows);
  layernorm_forward<double>(out.data(), mean.data(), rstd.data(), x.in.data(), x.gamma.data(), x.beta.data(), rows,
                            C, kLayerNormEps);

  const std::vector<double> din0 = accumulate_din ? random_vector(rows * C, rng)
                                                  : std::vector<double>(rows * C, kNaN);
  const std::vector<double> dgamma0 = random_vector(C, rng), dbeta0 = random_vector(C, rng);
  std::vector<double> din = din0, dgamma = dgamma0, dbeta = dbeta0;
  layernorm_backward<double>(din.data(), dgamma.data(), dbeta.data(), x.dout.data(), x.in.data(), mean.data(),
                             rstd.data(), x.gamma.data(), rows, C, accumulate_din);

  std::vector<double> scratch_mean(rows), scratch_rstd(rows);
  auto loss = [&] {
    layernorm_forward<double>(out.data(), scratch_mean.data(), scratch_rstd.data(), x.in.data(), x.gamma.data(),
                              x.beta.data(), rows, C, kLayerNormEps);
    return project(out, x.dout);
  };
  EXPECT_TRUE(gradients_match(accumulate_din ? minus(din, din0) : din, numeric_gradient(x.in, loss), kGradTol));
  EXPECT_TRUE(gradients_match(minus(dgamma, dgamma0), numeric_gradient(x.gamma, loss), kGradTol));
  EXPECT_TRUE(gradients_match(minus(dbeta, dbeta0), numeric_gradient(x.beta, loss), kGradTol));
}

TEST(DenseLayerNorm, Gradients) {
  check_layernorm_gradients(false);
  check_layernorm_gradients(true);
}

TEST(DenseLayerNorm, SavedStatisticsAreBiasedMeanAndRstd) {
  const int64_t rows = 4, C = 9;
  std::mt19937_64 rng(32);
  const NormInputs x = make_norm_inputs(rows, C, rng);
  std::vector<double> out(rows * C), mean(rows), rstd(rows);
  layernorm_forward<double>(out.data(), mean.data(), rstd.data(), x.in.data(), x.gamma.data(), x.beta.data(), rows,
                            C, kLayerNormEps);
  for (int64_t r = 0; r < rows; ++r) {
    double mu = 0.0, var = 0.0;
    for (int64_t j = 0; j < C; ++j) mu += x.in[r * C + j] / C;
    for (int64_t j = 0; j < C; ++j) var += (x.in[r * C + j] - mu) * (x.in[r * C + j] - mu) / C;
    EXPECT_NEAR(mean[r], mu, 1e-14);
    EXPECT_NEAR(rstd[r], 1.0 / std::sqrt(var + kLayerNormEps), 1e-12);
    for (int64_t j = 0; j < C; ++j) {
      const double expect = (x.in[r * C + j] - mu) / std::sqrt(var + kLayerNormEps) * x.gamma[j] + x.beta[j];
      EXPECT_NEAR(out[r * C + j], expect, 1e-12);
    }
  }
}

// Large enough to take the OpenMP path (rows·C > 32k): must agree with the same rows done one at a time
// through the serial path (a race in the dγ/dβ reduction would show here with OMP_NUM_THREADS > 1).
TEST(DenseLayerNorm, ParallelPathMatchesRowByRow) {
  const int64_t rows = 300, C = 130;
  std::mt19937_64 rng(33);
  const NormInputs x = make_norm_inputs(rows, C, rng);
  std::vector<double> out(rows * C), mean(rows), rstd(rows), din(rows * C), dgamma(C, 0.0), dbeta(C, 0.0);
  layernorm_forward<double>(out.data(), mean.data(), rstd.data(), x.in.data(), x.gamma.data(), x.beta.data(), rows,
                            C, kLayerNormEps);
  layernorm_backward<double>(din.data(), dgamma.data(), dbeta.data(), x.dout.data(), x.in.data(), mean.data(),
                             rstd.data(), x.gamma.data(), rows, C);
  std::vector<double> out1(rows * C), mean1(rows), rstd1(rows), din1(rows * C), dgamma1(C, 0.0), dbeta1(C, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    layernorm_forward<double>(&out1[r * C], &mean1[r], &rstd1[r], &x.in[r * C], x.gamma.data(), x.beta.data(), 1, C,
                              kLayerNormEps);
    layernorm_backward<double>(&din1[r * C], dgamma1.data(), dbeta1.data(), &x.dout[r * C], &x.in[r * C],
                               &mean1[r], &rstd1[r], x.gamma.data(), 1, C);
  }
  EXPECT_EQ(out, out1);
  EXPECT_EQ(din, din1);
  EXPECT_TRUE(gradients_match(dgamma, dgamma1, 1e-13));
  EXPECT_TRUE(gradients_match(dbeta, dbeta1, 1e-13));
}

TEST(DenseLayerNorm, FloatForwardAndBackwardMatchDouble) {
  const int64_t rows = 16, C = 96;
  std::mt19937_64 rng(34);
  const NormInputs x = make_norm_inputs(rows, C, rng);
  std::vector<double> out(rows * C), mean(rows), rstd(rows), din(rows * C), dgamma(C, 0.0), dbeta(C, 0.0);
  layernorm_forward<double>(out.data(), mean.data(), rstd.data(), x.in.data(), x.gamma.data(), x.beta.data(), rows,
                            C, kLayerNormEps);
  layernorm_backward<double>(din.data(), dgamma.data(), dbeta.data(), x.dout.data(), x.in.data(), mean.data(),
                             rstd.data(), x.gamma.data(), rows, C);

  const auto in_f = cast_vector<float>(x.in), gamma_f = cast_vector<float>(x.gamma);
  const auto beta_f = cast_vector<float>(x.beta), dout_f = cast_vector<float>(x.dout);
  std::vector<float> out_f(rows * C), mean_f(rows), rstd_f(rows), din_f(rows * C), dgamma_f(C, 0.0f), dbeta_f(C, 0.0f);
  layernorm_forward<float>(out_f.data(), mean_f.data(), rstd_f.data(), in_f.data(), gamma_f.data(), beta_f.data(),
                           rows, C, static_cast<float>(kLayerNormEps));
  layernorm_backward<float>(din_f.data(), dgamma_f.data(), dbeta_f.data(), dout_f.data(), in_f.data(), mean_f.data(),
                            rstd_f.data(), gamma_f.data(), rows, C);
  // Normalising divides by a std of ~0.6, which amplifies the float rounding of the inputs a little.
  EXPECT_LT(rel_diff(out_f, out), 2e-6);
  EXPECT_LT(rel_diff(din_f, din), 2e-6);
  EXPECT_LT(rel_diff(dgamma_f, dgamma), 2e-6);
  EXPECT_LT(rel_diff(dbeta_f, dbeta), 2e-6);
}

// ---------------------------------------------------------------- rmsnorm

constexpr double kRmsNormEps = 1e-6;

void check_rmsnorm_gradients(bool accumulate_din) {
  SCOPED_TRACE(testing::Message() << "accumulate_din=" << accumulate_din);
  const int64_t rows = 3, C = 70;
  std::mt19937_64 rng(40 + accumulate_din);
  std::vector<double> in = random_vector(rows * C, rng);
  std::vector<double> g = random_vector(C, rng, -0.5, 0.5);  // the unit-offset parameter: scale is 1 + g
  const std::vector<double> w = random_vector(rows * C, rng);
  std::vector<double> out(rows * C), rrms(rows);
  rmsnorm_forward<double>(out.data(), rrms.data(), in.data(), g.data(), rows, C, kRmsNormEps);

  const std::vector<double> din0 = accumulate_din ? random_vector(rows * C, rng)
                                                  : std::vector<double>(rows * C, kNaN);
  const std::vector<double> dg0 = random_vector(C, rng);
  std::vector<double> din = din0, dg = dg0;
  rmsnorm_backward<double>(din.data(), dg.data(), w.data(), in.data(), rrms.data(), g.data(), rows, C,
                           accumulate_din);

  std::vector<double> scratch_rrms(rows);
  auto loss = [&] {
    rmsnorm_forward<double>(out.data(), scratch_rrms.data(), in.data(), g.data(), rows, C, kRmsNormEps);
    return project(out, w);
  };
  EXPECT_TRUE(gradients_match(accumulate_din ? minus(din, din0) : din, numeric_gradient(in, loss), kGradTol));
  EXPECT_TRUE(gradients_match(minus(dg, dg0), numeric_gradient(g, loss), kGradTol));
}

TEST(DenseRmsNorm, Gradients) {
  check_rmsnorm_gradients(false);
  check_rmsnorm_gradients(true);
}

TEST(DenseRmsNorm, ForwardIsUnitOffsetRms) {
  const int64_t rows = 2, C = 5;
  const std::vector<double> in = {1, -2, 3, 0.5, 4, -1, 0, 2, 2, -3};
  const std::vector<double> g = {0, 0.5, -0.25, 1, 0};
  std::vector<double> out(rows * C), rrms(rows);
  rmsnorm_forward<double>(out.data(), rrms.data(), in.data(), g.data(), rows, C, kRmsNormEps);
  for (int64_t r = 0; r < rows; ++r) {
    double ms = 0.0;
    for (int64_t j = 0; j < C; ++j) ms += in[r * C + j] * in[r * C + j] / C;
    const double expect_rrms = 1.0 / std::sqrt(ms + kRmsNormEps);
    EXPECT_NEAR(rrms[r], expect_rrms, 1e-15);
    for (int64_t j = 0; j < C; ++j) EXPECT_NEAR(out[r * C + j], in[r * C + j] * expect_rrms * (1.0 + g[j]), 1e-14);
  }
}

TEST(DenseRmsNorm, ParallelPathMatchesRowByRow) {
  const int64_t rows = 300, C = 130;
  std::mt19937_64 rng(42);
  const std::vector<double> in = random_vector(rows * C, rng), g = random_vector(C, rng, -0.5, 0.5);
  const std::vector<double> dout = random_vector(rows * C, rng);
  std::vector<double> out(rows * C), rrms(rows), din(rows * C), dg(C, 0.0);
  rmsnorm_forward<double>(out.data(), rrms.data(), in.data(), g.data(), rows, C, kRmsNormEps);
  rmsnorm_backward<double>(din.data(), dg.data(), dout.data(), in.data(), rrms.data(), g.data(), rows, C);
  std::vector<double> out1(rows * C), rrms1(rows), din1(rows * C), dg1(C, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    rmsnorm_forward<double>(&out1[r * C], &rrms1[r], &in[r * C], g.data(), 1, C, kRmsNormEps);
    rmsnorm_backward<double>(&din1[r * C], dg1.data(), &dout[r * C], &in[r * C], &rrms1[r], g.data(), 1, C);
  }
  EXPECT_EQ(out, out1);
  EXPECT_EQ(din, din1);
  EXPECT_TRUE(gradients_match(dg, dg1, 1e-13));
}

TEST(DenseRmsNorm, FloatForwardAndBackwardMatchDouble) {
  const int64_t rows = 16, C = 96;
  std::mt19937_64 rng(43);
  const std::vector<double> in = random_vector(rows * C, rng), g = random_vector(C, rng, -0.5, 0.5);
  const std::vector<double> dout = random_vector(rows * C, rng);
  std::vector<double> out(rows * C), rrms(rows), din(rows * C), dg(C, 0.0);
  rmsnorm_forward<double>(out.data(), rrms.data(), in.data(), g.data(), rows, C, kRmsNormEps);
  rmsnorm_backward<double>(din.data(), dg.data(), dout.data(), in.data(), rrms.data(), g.data(), rows, C);

  const auto in_f = cast_vector<float>(in), g_f = cast_vector<float>(g), dout_f = cast_vector<float>(dout);
  std::vector<float> out_f(rows * C), rrms_f(rows), din_f(rows * C), dg_f(C, 0.0f);
  rmsnorm_forward<float>(out_f.data(), rrms_f.data(), in_f.data(), g_f.data(), rows, C,
                         static_cast<float>(kRmsNormEps));
  rmsnorm_backward<float>(din_f.data(), dg_f.data(), dout_f.data(), in_f.data(), rrms_f.data(), g_f.data(), rows, C);
  EXPECT_LT(rel_diff(out_f, out), 2e-6);
  EXPECT_LT(rel_diff(din_f, din), 2e-6);
  EXPECT_LT(rel_diff(dg_f, dg), 2e-6);
}

// ---------------------------------------------------------------- gelu

TEST(DenseGelu, Gradient) {
  const int64_t n = 64;
  std::mt19937_64 rng(50);
  std::vector<double> in = random_vector(n, rng, -5.0, 5.0);  // both tails and the curved middle
  const std::vector<double> w = random_vector(n, rng);
  std::vector<double> out(n), din(n, kNaN);
  gelu_backward<double>(din.data(), w.data(), in.data(), n);
  auto loss = [&] {
    gelu_forward<double>(out.data(), in.data(), n);
    return project(out, w);
  };
  EXPECT_TRUE(gradients_match(din, numeric_gradient(in, loss), kGradTol));
}

TEST(DenseGelu, ForwardIsExactErfForm) {
  // Values of 0.5·x·(1 + erf(x/√2)) computed independently (mpmath, 30 digits); the tanh approximation misses
  // gelu(1) by ~1.6e-4, far outside the tolerance.
  const std::vector<double> in = {-3.0, -1.0, 0.0, 0.5, 1.0, 2.0};
  const std::vector<double> expect = {-0.0040496940948902836, -0.15865525393145705, 0.0,
                                      0.34573123063700655,   0.84134474606854295,  1.9544997361036416};
  std::vector<double> out(in.size());
  gelu_forward<double>(out.data(), in.data(), static_cast<int64_t>(in.size()));
  for (size_t i = 0; i < in.size(); ++i) EXPECT_NEAR(out[i], expect[i], 1e-15) << "x = " << in[i];
}

TEST(DenseGelu, FloatForwardAndBackwardMatchDouble) {
  // Above the OpenMP threshold, so the parallel loop is the one being compared.
  const int64_t n = 10000;
  std::mt19937_64 rng(52);
  const std::vector<double> in = random_vector(n, rng, -5.0, 5.0), dout = random_vector(n, rng);
  std::vector<double> out(n), din(n);
  gelu_forward<double>(out.data(), in.data(), n);
  gelu_backward<double>(din.data(), dout.data(), in.data(), n);
  const auto in_f = cast_vector<float>(in), dout_f = cast_vector<float>(dout);
  std::vector<float> out_f(n), din_f(n);
  gelu_forward<float>(out_f.data(), in_f.data(), n);
  gelu_backward<float>(din_f.data(), dout_f.data(), in_f.data(), n);
  EXPECT_LT(rel_diff(out_f, out), 1e-6);
  EXPECT_LT(rel_diff(din_f, din), 1e-6);
}

#ifdef STARFLOW_AVX512_KERNELS
// The AVX-512 GELU (16-lane packets) against the AVX2 one, on lengths that end in a partial packet of either
// width: the same erf polynomial, evaluated with other instructions (not the same bits), and libmvec's exp of
// another width: they agree to float rounding.
TEST(DenseGelu, Avx512FormAgreesWithAvx2Form) {
  if (!starflow::core::cpu::host_has_avx512()) GTEST_SKIP() << "this host has no AVX-512";
  using starflow::core::cpu::CpuIsa;
  const int64_t n = 10000 + 13;
  std::mt19937_64 rng(53);
  const auto in = cast_vector<float>(random_vector(n, rng, -5.0, 5.0)), dout = cast_vector<float>(random_vector(n, rng));
  std::vector<float> out[2], serial[2], din[2];
  const CpuIsa saved = starflow::core::cpu::cpu_isa();
  for (int wide = 0; wide < 2; ++wide) {
    starflow::core::cpu::set_cpu_isa(wide ? CpuIsa::kAvx512 : CpuIsa::kBaseline);
    out[wide].assign(n, NAN), serial[wide].assign(21, NAN), din[wide].assign(n, NAN);
    gelu_forward<float>(out[wide].data(), in.data(), n);
    gelu_forward_serial<float>(serial[wide].data(), in.data(), 21);
    gelu_backward<float>(din[wide].data(), dout.data(), in.data(), n);
  }
  starflow::core::cpu::set_cpu_isa(saved);
  auto wide = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
  EXPECT_LT(rel_diff(out[0], wide(out[1])), 1e-6);
  EXPECT_LT(rel_diff(serial[0], wide(serial[1])), 1e-6);
  EXPECT_LT(rel_diff(din[0], wide(din[1])), 1e-6);
  EXPECT_NE(out[0], out[1]) << "the AVX-512 form did not run";
}

// The training norms' AVX-512 form (norms_avx512.cpp: the same bodies, double sums in 8 lanes instead of 4)
// against the AVX2 form, above the OpenMP threshold and with a width that ends in a partial vector and a partial
// column block: forward, input and parameter gradients agree to float rounding, for LayerNorm and both RMSNorm
// gains.
TEST(DenseNorms, Avx512FormsAgreeWithAvx2Forms) {
  if (!starflow::core::cpu::host_has_avx512()) GTEST_SKIP() << "this host has no AVX-512";
  using starflow::core::cpu::CpuIsa;
  const int64_t rows = 130, C = 301;
  std::mt19937_64 rng(54);
  const auto in = cast_vector<float>(random_vector(rows * C, rng, -2.0, 4.0));
  const auto dout = cast_vector<float>(random_vector(rows * C, rng));
  const auto gamma = cast_vector<float>(random_vector(C, rng, 0.5, 1.5)), beta = cast_vector<float>(random_vector(C, rng));
  struct Results {
    std::vector<float> ln, ln_din, ln_dgamma, ln_dbeta, rms, rms_din, rms_dg, gain, gain_din, gain_dw;
  } r[2];
  const CpuIsa saved = starflow::core::cpu::cpu_isa();
  for (int wide = 0; wide < 2; ++wide) {
    starflow::core::cpu::set_cpu_isa(wide ? CpuIsa::kAvx512 : CpuIsa::kBaseline);
    Results& x = r[wide];
    std::vector<float> mean(rows), rstd(rows), rrms(rows);
    x.ln.resize(rows * C), x.ln_din.resize(rows * C), x.ln_dgamma.assign(C, 0.f), x.ln_dbeta.assign(C, 0.f);
    layernorm_forward(x.ln.data(), mean.data(), rstd.data(), in.data(), gamma.data(), beta.data(), rows, C, 1e-5f);
    layernorm_backward(x.ln_din.data(), x.ln_dgamma.data(), x.ln_dbeta.data(), dout.data(), in.data(), mean.data(),
                       rstd.data(), gamma.data(), rows, C);
    x.rms.resize(rows * C), x.rms_din.resize(rows * C), x.rms_dg.assign(C, 0.f);
    rmsnorm_forward(x.rms.data(), rrms.data(), in.data(), beta.data(), rows, C, 1e-6f);
    rmsnorm_backward(x.rms_din.data(), x.rms_dg.data(), dout.data(), in.data(), rrms.data(), beta.data(), rows, C);
    x.gain.resize(rows * C), x.gain_din.resize(rows * C), x.gain_dw.assign(C, 0.f);
    rmsnorm_gain_forward(x.gain.data(), rrms.data(), in.data(), gamma.data(), rows, C, 1e-6f);
    rmsnorm_gain_backward(x.gain_din.data(), x.gain_dw.data(), dout.data(), in.data(), rrms.data(), gamma.data(), rows,
                          C);
  }
  starflow::core::cpu::set_cpu_isa(saved);
  auto wide = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
  EXPECT_LT(rel_diff(r[0].ln, wide(r[1].ln)), 1e-6);
  EXPECT_LT(rel_diff(r[0].ln_din, wide(r[1].ln_din)), 1e-6);
  EXPECT_LT(rel_diff(r[0].ln_dgamma, wide(r[1].ln_dgamma)), 1e-6);
  EXPECT_LT(rel_diff(r[0].ln_dbeta, wide(r[1].ln_dbeta)), 1e-6);
  EXPECT_LT(rel_diff(r[0].rms, wide(r[1].rms)), 1e-6);
  EXPECT_LT(rel_diff(r[0].rms_din, wide(r[1].rms_din)), 1e-6);
  EXPECT_LT(rel_diff(r[0].rms_dg, wide(r[1].rms_dg)), 1e-6);
  EXPECT_LT(rel_diff(r[0].gain, wide(r[1].gain)), 1e-6);
  EXPECT_LT(rel_diff(r[0].gain_din, wide(r[1].gain_din)), 1e-6);
  EXPECT_LT(rel_diff(r[0].gain_dw, wide(r[1].gain_dw)), 1e-6);
}
#endif

}  // namespace
