// The small-batch (decoding) linear kernel against a double-precision reference, across the shapes that
// exercise its blocking: row counts that fill 16-row panels or end in an 8-row panel, widths that end in
// a partial tile of weight rows, sums spanning several k blocks, row counts past 64 (blocked like a GEMM);
// its fused outputs (residual add, transposed GELU output) and its independence of the thread count and
// of the row count.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/build_config.h"
#include "core/ops/cpu/cpu_isa.h"
#include "core/ops/cpu/gelu.h"
#include "core/ops/cpu/layernorm.h"
#include "core/ops/cpu/linear_small_batch.h"
#include "core/ops/cpu/rmsnorm.h"
#include "core/random.h"

using namespace starflow::core;

namespace {

struct Shape3 {
  int64_t M, K, N;
};

struct Problem {
  Shape3 s;
  std::vector<float> in, w, b;
  explicit Problem(Shape3 shape, uint64_t seed) : s(shape), in(s.M * s.K), w(s.N * s.K), b(s.N) {
    Rng rng(seed);
    for (float& v : in) v = float(rng.normal());
    for (float& v : w) v = float(rng.normal());
    for (float& v : b) v = float(rng.normal());
  }
  double reference(int64_t m, int64_t n, bool with_bias) const {
    double ref = with_bias ? b[n] : 0.0;
    for (int64_t k = 0; k < s.K; ++k) ref += double(in[m * s.K + k]) * w[n * s.K + k];
    return ref;
  }
};

// Float rounding of a K-term dot product grows like √K: 2e-5 (relative to 1 + |ref|) covers K ≤ 256, and
// OpenBLAS's sgemm itself reaches 2.3e-5 on the K = 1024 shape here.
double tolerance(int64_t K) { return 2e-5 * std::sqrt(std::max(1.0, double(K) / 256.0)); }

const Shape3 kShapes[] = {{1, 256, 768}, {3, 64, 10}, {16, 256, 1024}, {17, 1024, 256}, {24, 96, 7},
                          {32, 128, 8},  {48, 40, 13}, {5, 4, 128}, {6, 16, 7}, {100, 256, 203}, {257, 72, 40},
                          {130, 1024, 64}};

}  // namespace

TEST(LinearSmallBatch, MatchesReferenceOnDecodeShapes) {
  for (const Shape3 s : kShapes) {
    const Problem p(s, 1);
    std::vector<float> out(s.M * s.N, NAN);
    for (bool with_bias : {true, false}) {
      cpu::linear_forward_small_batch(out.data(), p.in.data(), p.w.data(), with_bias ? p.b.data() : nullptr, s.M, s.K,
                                      s.N);
      double worst = 0;
      for (int64_t m = 0; m < s.M; ++m)
        for (int64_t n = 0; n < s.N; ++n) {
          const double ref = p.reference(m, n, with_bias);
          worst = std::max(worst, std::abs(ref - out[m * s.N + n]) / (1.0 + std::abs(ref)));
        }
      EXPECT_LT(worst, tolerance(s.K)) << "M=" << s.M << " K=" << s.K << " N=" << s.N << " bias=" << with_bias;
    }
  }
}

TEST(LinearSmallBatch, SameBitsForAnyThreadCount) {
  for (const Shape3 s : kShapes) {
    const Problem p(s, 2);
    std::vector<float> one(s.M * s.N), two(s.M * s.N);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    cpu::linear_forward_small_batch(one.data(), p.in.data(), p.w.data(), p.b.data(), s.M, s.K, s.N);
    omp_set_num_threads(2);
    cpu::linear_forward_small_batch(two.data(), p.in.data(), p.w.data(), p.b.data(), s.M, s.K, s.N);
    omp_set_num_threads(saved);
    EXPECT_EQ(0, std::memcmp(one.data(), two.data(), sizeof(float) * one.size())) << "M=" << s.M << " N=" << s.N;
    // ... and for any row count: the rows one call at a time (past 64 rows the kernel blocks like a GEMM).
    std::vector<float> row(s.N);
    for (int64_t m = 0; m < s.M; m += 7) {
      cpu::linear_forward_small_batch(row.data(), p.in.data() + m * s.K, p.w.data(), p.b.data(), 1, s.K, s.N);
      EXPECT_EQ(0, std::memcmp(row.data(), one.data() + m * s.N, sizeof(float) * s.N)) << "M=" << s.M << " row " << m;
    }
  }
}

#ifdef STARFLOW_SMALL_BATCH_KERNEL
// Weights in tile layout give the row-major layout's bits (same sums in the same order), on every shape:
// short last tiles (N not a multiple of 6), one k block and several, past 64 rows (blocked), one and two
// threads; the tiled copy keeps the tensor's size, and with a row-major reading it is not the same
// (the test would pass with a no-op tiling otherwise).
TEST(LinearSmallBatch, TiledWeightsGiveTheRowMajorBits) {
  for (const Shape3 s : kShapes) {
    const Problem p(s, 5);
    std::vector<float> tiled(p.w.size(), NAN), rows(s.M * s.N), tiles(s.M * s.N);
    cpu::tile_small_batch_weight(tiled.data(), p.w.data(), s.K, s.N);
    for (int threads : {1, 2}) {
      const int saved = omp_get_max_threads();
      omp_set_num_threads(threads);
      cpu::linear_forward_small_batch(rows.data(), p.in.data(), p.w.data(), p.b.data(), s.M, s.K, s.N);
      cpu::linear_forward_small_batch(tiles.data(), p.in.data(), tiled.data(), p.b.data(), s.M, s.K, s.N,
                                      cpu::SmallBatchWeights::kTiles);
      omp_set_num_threads(saved);
      EXPECT_EQ(0, std::memcmp(rows.data(), tiles.data(), sizeof(float) * rows.size()))
          << "M=" << s.M << " K=" << s.K << " N=" << s.N << " threads=" << threads;
    }
    if (s.N > 1 && s.K > 1) {
      cpu::linear_forward_small_batch(tiles.data(), p.in.data(), tiled.data(), p.b.data(), s.M, s.K, s.N);
      EXPECT_NE(0, std::memcmp(rows.data(), tiles.data(), sizeof(float) * rows.size())) << "N=" << s.N;
    }
  }
}

// The decode step's fused outputs, run by a team of two: out = x·Wᵀ + b + residual (row-major), and
// GELU(x·Wᵀ + b) written transposed [N, Mp] for the next linear.
TEST(LinearSmallBatch, TeamOutputsResidualAndTransposedGelu) {
  for (const Shape3 s : {Shape3{16, 256, 1024}, {24, 96, 7}, {3, 64, 10}}) {
    const Problem p(s, 3);
    const int64_t Mp = cpu::small_batch_padded_rows(s.M);
    std::vector<float> residual(s.M * s.N), out(s.M * s.N, NAN), xt(s.K * Mp, NAN), out_t(s.N * Mp, NAN);
    Rng rng(4);
    for (float& v : residual) v = float(rng.normal());
    cpu::SmallBatchOutput row_major, transposed;
    row_major.out = out.data();
    row_major.residual = residual.data();
    transposed.out_t = out_t.data();
    transposed.gelu = true;
#pragma omp parallel num_threads(2)
    {
      cpu::small_batch_transpose_team(xt.data(), p.in.data(), s.M, s.K);
      cpu::small_batch_linear_team(row_major, xt.data(), s.M, p.w.data(), p.b.data(), s.K, s.N);
      cpu::small_batch_linear_team(transposed, xt.data(), s.M, p.w.data(), p.b.data(), s.K, s.N);
    }
    double worst_res = 0, worst_gelu = 0;
    for (int64_t m = 0; m < s.M; ++m)
      for (int64_t n = 0; n < s.N; ++n) {
        const double ref = p.reference(m, n, true);
        const double with_res = ref + residual[m * s.N + n];
        const double gelu = 0.5 * ref * (1.0 + std::erf(ref / std::sqrt(2.0)));
        worst_res = std::max(worst_res, std::abs(with_res - out[m * s.N + n]) / (1.0 + std::abs(with_res)));
        worst_gelu = std::max(worst_gelu, std::abs(gelu - out_t[n * Mp + m]) / (1.0 + std::abs(gelu)));
      }
    EXPECT_LT(worst_res, tolerance(s.K)) << "M=" << s.M << " N=" << s.N;
    EXPECT_LT(worst_gelu, tolerance(s.K)) << "M=" << s.M << " N=" << s.N;
    for (int64_t n = 0; n < s.N; ++n)  // the padding columns hold GELU(bias): finite
      for (int64_t m = s.M; m < Mp; ++m) EXPECT_TRUE(std::isfinite(out_t[n * Mp + m]));
  }
}

// The decode step's LayerNorm and RMSNorm write xt [C, Mp] with the values of the row-major forms (the
// same arithmetic), padding rows zero, for row counts that end in a partial block of 8 and widths that
// end in a partial block of features; on a team of two, as the decode step calls them.
TEST(LinearSmallBatch, TransposedNormsEqualTheRowMajorForms) {
  for (const auto& [M, C] : {std::pair<int64_t, int64_t>{16, 256}, {13, 72}, {3, 20}, {64, 36}}) {
    const int64_t Mp = cpu::small_batch_padded_rows(M);
    std::vector<float> in(M * C), gamma(C), beta(C);
    Rng rng(7);
    for (float& v : in) v = float(3.0 + rng.normal());  // an offset: the mean matters
    for (float& v : gamma) v = float(rng.normal());
    for (float& v : beta) v = float(rng.normal());
    std::vector<float> ln(M * C), mean(M), rstd(M), rms(M * C), rrms(M);
    cpu::layernorm_forward(ln.data(), mean.data(), rstd.data(), in.data(), gamma.data(), beta.data(), M, C, 1e-5f);
    cpu::rmsnorm_forward(rms.data(), rrms.data(), in.data(), gamma.data(), M, C, 1e-6f);
    std::vector<float> xt_ln(C * Mp, NAN), xt_rms(C * Mp, NAN), mean_t(M), rstd_t(M), rrms_t(M);
#pragma omp parallel num_threads(2)
    {
      cpu::layernorm_transposed_team(xt_ln.data(), mean_t.data(), rstd_t.data(), in.data(), gamma.data(),
                                     beta.data(), M, C, 1e-5f);
      cpu::rmsnorm_transposed_team(xt_rms.data(), rrms_t.data(), in.data(), gamma.data(), M, C, 1e-6f);
    }
    for (int64_t j = 0; j < C; ++j)
      for (int64_t r = 0; r < Mp; ++r) {
        const float want_ln = r < M ? ln[r * C + j] : 0.f, want_rms = r < M ? rms[r * C + j] : 0.f;
        ASSERT_NEAR(xt_ln[j * Mp + r], want_ln, 1e-6f * (1.f + std::abs(want_ln))) << "M=" << M << " C=" << C;
        ASSERT_NEAR(xt_rms[j * Mp + r], want_rms, 1e-6f * (1.f + std::abs(want_rms))) << "M=" << M << " C=" << C;
      }
    EXPECT_EQ(mean, mean_t);
    EXPECT_EQ(rstd, rstd_t);
    EXPECT_EQ(rrms, rrms_t);
  }
}
#endif

#ifdef STARFLOW_AVX512_KERNELS
namespace {
// Runs f with the given kernel set, restoring the one in use.
template <class F>
void with_isa(cpu::CpuIsa isa, F&& f) {
  const cpu::CpuIsa saved = cpu::cpu_isa();
  cpu::set_cpu_isa(isa);
  f();
  cpu::set_cpu_isa(saved);
}
}  // namespace

// The AVX-512 kernels compute the AVX2 kernel's sums in the same order: the same bits on every shape (16- and
// 32-row panels and a last 8-row one, short last units, several k blocks, past 64 rows), every weight layout
// (row-major and 6-row tiles for the 12-row kernel; 16-row lane tiles, short last tiles and units of one to
// three tiles for the kernel over weight rows), one and two threads, and the team's fused outputs (residual;
// transposed). Every other test in this file runs whichever set the host selects. (GELU's forms are compared
// in test_ops_dense.cpp.)
TEST(LinearSmallBatch, Avx512GivesTheAvx2Bits) {
  if (!cpu::host_has_avx512()) GTEST_SKIP() << "this host has no AVX-512";
  using Layout = cpu::SmallBatchWeights;
  for (const Shape3 s : kShapes) {
    const Problem p(s, 9);
    std::vector<float> tiled(p.w.size()), lanes(p.w.size());
    cpu::tile_small_batch_weight(tiled.data(), p.w.data(), s.K, s.N);
    cpu::tile_small_batch_weight(lanes.data(), p.w.data(), s.K, s.N, Layout::kLaneTiles);
    const auto weights = [&](Layout layout) {
      return layout == Layout::kRows ? p.w.data() : layout == Layout::kTiles ? tiled.data() : lanes.data();
    };
    for (int threads : {1, 2}) {
      const int saved = omp_get_max_threads();
      omp_set_num_threads(threads);
      std::vector<float> narrow(s.M * s.N, NAN);
      with_isa(cpu::CpuIsa::kBaseline, [&] {
        cpu::linear_forward_small_batch(narrow.data(), p.in.data(), p.w.data(), p.b.data(), s.M, s.K, s.N);
      });
      for (const Layout layout : {Layout::kRows, Layout::kTiles, Layout::kLaneTiles}) {
        std::vector<float> wide(s.M * s.N, NAN);
        with_isa(cpu::CpuIsa::kAvx512, [&] {
          cpu::linear_forward_small_batch(wide.data(), p.in.data(), weights(layout), p.b.data(), s.M, s.K, s.N,
                                          layout);
        });
        EXPECT_EQ(0, std::memcmp(narrow.data(), wide.data(), sizeof(float) * narrow.size()))
            << "M=" << s.M << " K=" << s.K << " N=" << s.N << " threads=" << threads << " layout=" << int(layout);
      }
      omp_set_num_threads(saved);
    }
    if (s.M > cpu::kSmallBatchRows) continue;
    // The team's fused outputs.
    const int64_t Mp = cpu::small_batch_padded_rows(s.M);
    std::vector<float> residual(s.M * s.N), xt(s.K * Mp);
    Rng rng(10);
    for (float& v : residual) v = float(rng.normal());
    // The AVX2 kernel on 6-row tiles, the AVX-512 kernels on 6-row tiles and on lane tiles.
    std::vector<float> out[3], out_t[3];
    for (int which = 0; which < 3; ++which) {
      const Layout layout = which == 2 ? Layout::kLaneTiles : Layout::kTiles;
      out[which].assign(s.M * s.N, NAN);
      out_t[which].assign(s.N * Mp, NAN);
      cpu::SmallBatchOutput row_major, transposed;
      row_major.out = out[which].data();
      row_major.residual = residual.data();
      transposed.out_t = out_t[which].data();
      with_isa(which == 0 ? cpu::CpuIsa::kBaseline : cpu::CpuIsa::kAvx512, [&] {
#pragma omp parallel num_threads(2)
        {
          cpu::small_batch_transpose_team(xt.data(), p.in.data(), s.M, s.K);
          cpu::small_batch_linear_team(row_major, xt.data(), s.M, weights(layout), p.b.data(), s.K, s.N, layout);
          cpu::small_batch_linear_team(transposed, xt.data(), s.M, weights(layout), p.b.data(), s.K, s.N, layout);
        }
      });
    }
    for (int which = 1; which < 3; ++which) {
      EXPECT_EQ(0, std::memcmp(out[0].data(), out[which].data(), sizeof(float) * out[0].size()))
          << "M=" << s.M << " N=" << s.N << " kernel " << which;
      EXPECT_EQ(0, std::memcmp(out_t[0].data(), out_t[which].data(), sizeof(float) * out_t[0].size()))
          << "M=" << s.M << " N=" << s.N << " kernel " << which;
    }
  }
}
#endif
