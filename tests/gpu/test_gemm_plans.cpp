// The cuBLAS call plans of the CUDA linear and attention ops (core/ops/cuda/gemm_plan.h, attention_dense_plan.h),
// run through a column-major reference GEMM with cuBLAS's semantics on the host and compared with the CPU ops in
// double, with the softmax steps written as the CUDA kernels compute them. This checks the transposes, leading
// dimensions, offsets and batch strides, the easiest part of a cuBLAS port to get wrong, on any machine.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/ops/cpu/attention.h"
#include "core/ops/cpu/attention_dense.h"
#include "core/ops/cpu/linear.h"
#include "core/ops/cuda/attention_dense_plan.h"
#include "core/ops/cuda/gemm_plan.h"

namespace starflow::core::cuda {
namespace {

// C = α·op(A)·op(B) + β·C for every member of every launch, column-major, as cublasGemmStridedBatchedEx
// computes it (β = 0 never reads C).
void reference_gemm(const GemmPlan& p, const double* A, const double* B, double* C, double alpha, double beta) {
  for (int64_t l = 0; l < p.launches; ++l) {
    for (int64_t j = 0; j < p.batch; ++j) {
      const double* a = A + p.a_offset + l * p.a_step + j * p.a_stride;
      const double* b = B + p.b_offset + l * p.b_step + j * p.b_stride;
      double* c = C + p.c_offset + l * p.c_step + j * p.c_stride;
      for (int64_t col = 0; col < p.n; ++col) {
        for (int64_t row = 0; row < p.m; ++row) {
          double acc = 0.0;
          for (int64_t t = 0; t < p.k; ++t) {
            const double av = p.trans_a ? a[t + row * p.lda] : a[row + t * p.lda];
            const double bv = p.trans_b ? b[col + t * p.ldb] : b[t + col * p.ldb];
            acc += av * bv;
          }
          double& out = c[row + col * p.ldc];
          out = beta == 0.0 ? alpha * acc : alpha * acc + beta * out;
        }
      }
    }
  }
}

// cuBLAS refuses a leading dimension smaller than the stored matrix's row count.
void expect_valid(const GemmPlan& p) {
  EXPECT_GE(p.lda, p.trans_a ? p.k : p.m);
  EXPECT_GE(p.ldb, p.trans_b ? p.n : p.k);
  EXPECT_GE(p.ldc, p.m);
}

std::vector<double> random_vector(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = dist(rng);
  return v;
}

void expect_all_near(const std::vector<double>& got, const std::vector<double>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int64_t wrong = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!(std::abs(got[i] - want[i]) <= 1e-12 * (1.0 + std::abs(want[i])))) {
      if (wrong < 5) ADD_FAILURE() << what << "[" << i << "] = " << got[i] << ", want " << want[i];
      ++wrong;
    }
  }
  EXPECT_EQ(wrong, 0) << what;
}

// The causal softmax kernel: row r is query r mod S; probabilities for keys 0..i, 0 above.
void causal_softmax(double* probs, int64_t rows, int64_t S, double scale) {
  for (int64_t r = 0; r < rows; ++r) {
    double* p = probs + r * S;
    const int64_t n = r % S + 1;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, p[j]);
    double sum = 0.0;
    for (int64_t j = 0; j < n; ++j) sum += std::exp(scale * (p[j] - mx));
    for (int64_t j = 0; j < S; ++j) p[j] = j < n ? std::exp(scale * (p[j] - mx)) / sum : 0.0;
  }
}

// The softmax backward kernel, in place over dP.
void causal_softmax_backward(double* ds, const double* probs, int64_t rows, int64_t S, double scale) {
  for (int64_t r = 0; r < rows; ++r) {
    double* d = ds + r * S;
    const double* p = probs + r * S;
    const int64_t n = r % S + 1;
    double dot = 0.0;
    for (int64_t j = 0; j < n; ++j) dot += d[j] * p[j];
    for (int64_t j = 0; j < S; ++j) d[j] = j < n ? scale * p[j] * (d[j] - dot) : 0.0;
  }
}

struct LinearShape {
  int64_t M, K, N;
};
constexpr LinearShape kLinearShapes[] = {{5, 7, 3}, {1, 4, 9}, {33, 16, 64}, {8, 3, 4}};

TEST(GemmPlan, LinearForwardEqualsCpuLinear) {
  std::mt19937 rng(1);
  for (const auto& [M, K, N] : kLinearShapes) {
    const auto in = random_vector(M * K, rng), weight = random_vector(N * K, rng);
    std::vector<double> want(M * N), got(M * N, std::nan(""));
    cpu::linear_forward<double>(want.data(), in.data(), weight.data(), nullptr, M, K, N);
    const GemmPlan plan = linear_forward_plan(M, K, N);
    expect_valid(plan);
    reference_gemm(plan, weight.data(), in.data(), got.data(), 1.0, 0.0);
    expect_all_near(got, want, "out");
  }
}

TEST(GemmPlan, LinearBackwardEqualsCpuLinear) {
  std::mt19937 rng(2);
  for (const auto& [M, K, N] : kLinearShapes) {
    const auto in = random_vector(M * K, rng), weight = random_vector(N * K, rng), dout = random_vector(M * N, rng);
    // Start from non-zero gradients: dW accumulates, din accumulates when asked.
    const auto dweight0 = random_vector(N * K, rng), din0 = random_vector(M * K, rng);
    std::vector<double> want_dw = dweight0, want_din = din0, got_dw = dweight0, got_din = din0;
    cpu::linear_backward<double>(want_din.data(), want_dw.data(), nullptr, dout.data(), in.data(), weight.data(), M, K,
                                 N, /*accumulate_din=*/true);
    const GemmPlan dw_plan = linear_backward_weight_plan(M, K, N), din_plan = linear_backward_input_plan(M, K, N);
    expect_valid(dw_plan);
    expect_valid(din_plan);
    reference_gemm(dw_plan, in.data(), dout.data(), got_dw.data(), 1.0, 1.0);
    reference_gemm(din_plan, weight.data(), dout.data(), got_din.data(), 1.0, 1.0);
    expect_all_near(got_dw, want_dw, "dweight");
    expect_all_near(got_din, want_din, "din");
  }
}

// B ≤ H loops over the batch and batches the heads; B > H the other way round. Both must be covered.
constexpr AttentionShape kAttentionShapes[] = {{2, 7, 3, 4}, {4, 5, 2, 6}, {1, 9, 1, 8}, {3, 6, 3, 2}};

double scale_of(int64_t dh) {
  const double q = std::pow(static_cast<double>(dh), -0.25);
  return q * q;
}

TEST(GemmPlan, AttentionForwardEqualsCpuAttention) {
  std::mt19937 rng(3);
  for (const AttentionShape& s : kAttentionShapes) {
    const int64_t C = s.C(), scores = s.B * s.H * s.S * s.S;
    const auto qkv = random_vector(s.B * s.S * 3 * C, rng);
    std::vector<double> want_out(s.B * s.S * C), want_probs(scores);
    cpu::attention_forward<double>(want_out.data(), want_probs.data(), qkv.data(), s.B, s.S, s.H, s.dh,
                                   scale_of(s.dh));
    std::vector<double> got_out(want_out.size(), std::nan("")), got_probs(scores, std::nan(""));
    for (const GemmPlan& plan : {attention_scores_plan(s), attention_output_plan(s)}) expect_valid(plan);
    reference_gemm(attention_scores_plan(s), qkv.data(), qkv.data(), got_probs.data(), 1.0, 0.0);
    causal_softmax(got_probs.data(), s.B * s.H * s.S, s.S, scale_of(s.dh));
    reference_gemm(attention_output_plan(s), qkv.data(), got_probs.data(), got_out.data(), 1.0, 0.0);
    expect_all_near(got_probs, want_probs, "probs");
    expect_all_near(got_out, want_out, "out");
  }
}

TEST(GemmPlan, AttentionBackwardEqualsCpuAttention) {
  std::mt19937 rng(4);
  for (const AttentionShape& s : kAttentionShapes) {
    const int64_t C = s.C(), scores = s.B * s.H * s.S * s.S;
    const auto qkv = random_vector(s.B * s.S * 3 * C, rng), dout = random_vector(s.B * s.S * C, rng);
    std::vector<double> out(s.B * s.S * C), probs(scores), scratch(scores);
    cpu::attention_forward<double>(out.data(), probs.data(), qkv.data(), s.B, s.S, s.H, s.dh, scale_of(s.dh));
    std::vector<double> want(s.B * s.S * 3 * C);
    cpu::attention_backward<double>(want.data(), scratch.data(), dout.data(), qkv.data(), probs.data(), s.B, s.S, s.H,
                                    s.dh, scale_of(s.dh));
    // NaN everywhere first: an element no plan writes shows up as a mismatch.
    std::vector<double> got(want.size(), std::nan("")), ds(scores, std::nan(""));
    for (const GemmPlan& plan :
         {attention_dprobs_plan(s), attention_dq_plan(s), attention_dk_plan(s), attention_dv_plan(s)})
      expect_valid(plan);
    reference_gemm(attention_dprobs_plan(s), qkv.data(), dout.data(), ds.data(), 1.0, 0.0);
    causal_softmax_backward(ds.data(), probs.data(), s.B * s.H * s.S, s.S, scale_of(s.dh));
    reference_gemm(attention_dq_plan(s), qkv.data(), ds.data(), got.data(), 1.0, 0.0);
    reference_gemm(attention_dk_plan(s), qkv.data(), ds.data(), got.data(), 1.0, 0.0);
    reference_gemm(attention_dv_plan(s), dout.data(), probs.data(), got.data(), 1.0, 0.0);
    expect_all_near(got, want, "dqkv");
  }
}

// The dense attention's plans (attention_dense_plan.h) with the kernels' steps between them in double: softmax
// over every key of score + bias + mask, its Jacobian without the scale (applied as the GEMMs' α), the bias
// gradient summed over the batch.
TEST(GemmPlan, DenseAttentionEqualsCpuDenseAttention) {
  std::mt19937 rng(5);
  for (const AttentionShape& s : kAttentionShapes) {
    const int64_t n = s.B * s.S * s.C(), scores = s.B * s.H * s.S * s.S;
    const double scale = 0.7;
    const auto q = random_vector(n, rng), k = random_vector(n, rng), v = random_vector(n, rng);
    const auto dout = random_vector(n, rng), bias = random_vector(s.H * s.S * s.S, rng);
    const auto mask = random_vector(s.B * s.S, rng), dbias0 = random_vector(s.H * s.S * s.S, rng);
    std::vector<double> out(n), probs(scores), scratch(scores), dq(n), dk(n), dv(n), dbias = dbias0;
    cpu::attention_dense_forward<double>(out.data(), probs.data(), q.data(), k.data(), v.data(), bias.data(),
                                         mask.data(), s.B, s.S, s.H, s.dh, scale);
    cpu::attention_dense_backward<double>(dq.data(), dk.data(), dv.data(), dbias.data(), scratch.data(), dout.data(),
                                          q.data(), k.data(), v.data(), probs.data(), s.B, s.S, s.H, s.dh, scale);
    for (const GemmPlan& plan :
         {dense_scores_plan(s), dense_output_plan(s), dense_dprobs_plan(s), dense_dq_plan(s), dense_dkv_plan(s)})
      expect_valid(plan);
    std::vector<double> got_probs(scores, std::nan("")), got_out(n, std::nan(""));
    reference_gemm(dense_scores_plan(s), k.data(), q.data(), got_probs.data(), scale, 0.0);
    for (int64_t r = 0; r < s.B * s.H * s.S; ++r) {  // dense_softmax_kernel
      double* p = got_probs.data() + r * s.S;
      const double* b = bias.data() + (r % (s.H * s.S)) * s.S;
      const double* m = mask.data() + (r / (s.H * s.S)) * s.S;
      double mx = -std::numeric_limits<double>::infinity(), sum = 0.0;
      for (int64_t j = 0; j < s.S; ++j) mx = std::max(mx, p[j] += b[j] + m[j]);
      for (int64_t j = 0; j < s.S; ++j) sum += std::exp(p[j] - mx);
      for (int64_t j = 0; j < s.S; ++j) p[j] = std::exp(p[j] - mx) / sum;
    }
    reference_gemm(dense_output_plan(s), v.data(), got_probs.data(), got_out.data(), 1.0, 0.0);
    expect_all_near(got_probs, probs, "probs");
    expect_all_near(got_out, out, "out");

    std::vector<double> ds(scores, std::nan("")), got_dq(n, std::nan("")), got_dk(got_dq), got_dv(got_dq);
    std::vector<double> got_dbias = dbias0;
    reference_gemm(dense_dprobs_plan(s), v.data(), dout.data(), ds.data(), 1.0, 0.0);
    for (int64_t r = 0; r < s.B * s.H * s.S; ++r) {  // dense_softmax_backward_kernel
      double* d = ds.data() + r * s.S;
      const double* p = probs.data() + r * s.S;
      double dot = 0.0;
      for (int64_t j = 0; j < s.S; ++j) dot += d[j] * p[j];
      for (int64_t j = 0; j < s.S; ++j) d[j] = p[j] * (d[j] - dot);
    }
    reference_gemm(dense_dq_plan(s), k.data(), ds.data(), got_dq.data(), scale, 0.0);
    reference_gemm(dense_dkv_plan(s), q.data(), ds.data(), got_dk.data(), scale, 0.0);
    reference_gemm(dense_dkv_plan(s), dout.data(), probs.data(), got_dv.data(), 1.0, 0.0);
    const int64_t per_batch = s.H * s.S * s.S;  // bias_gradient_kernel
    for (int64_t e = 0; e < per_batch; ++e)
      for (int64_t b = 0; b < s.B; ++b) got_dbias[e] += ds[b * per_batch + e];
    expect_all_near(got_dq, dq, "dq");
    expect_all_near(got_dk, dk, "dk");
    expect_all_near(got_dv, dv, "dv");
    expect_all_near(got_dbias, dbias, "dbias");
  }
}

}  // namespace
}  // namespace starflow::core::cuda
