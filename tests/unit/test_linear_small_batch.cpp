// The small-batch (decoding) linear kernel against a double-precision reference, across the shapes that
// exercise its blocking: row counts with and without a remainder of 4, and shapes it hands to BLAS.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/ops/cpu/linear.h"
#include "core/ops/cpu/linear_small_batch.h"
#include "core/random.h"

using namespace starflow::core;

TEST(LinearSmallBatch, MatchesReferenceOnDecodeShapes) {
  Rng rng(1);
  struct Shape3 {
    int64_t M, K, N;
  };
  for (const Shape3 s : {Shape3{1, 256, 768}, {3, 64, 10}, {16, 256, 1024}, {17, 1024, 256}, {32, 128, 8},
                         {5, 4, 128} /* K = 4: BLAS fallback */, {6, 16, 7} /* odd N: fallback */}) {
    std::vector<float> in(s.M * s.K), w(s.N * s.K), b(s.N), out(s.M * s.N, NAN);
    for (float& v : in) v = float(rng.normal());
    for (float& v : w) v = float(rng.normal());
    for (float& v : b) v = float(rng.normal());
    for (bool with_bias : {true, false}) {
      ASSERT_LE(s.M, cpu::kSmallBatchRows);
      cpu::linear_forward(out.data(), in.data(), w.data(), with_bias ? b.data() : nullptr, s.M, s.K, s.N);
      double worst = 0;
      for (int64_t m = 0; m < s.M; ++m)
        for (int64_t n = 0; n < s.N; ++n) {
          double ref = with_bias ? b[n] : 0.0;
          for (int64_t k = 0; k < s.K; ++k) ref += double(in[m * s.K + k]) * w[n * s.K + k];
          worst = std::max(worst, std::abs(ref - out[m * s.N + n]) / (1.0 + std::abs(ref)));
        }
      EXPECT_LT(worst, 2e-5) << "M=" << s.M << " K=" << s.K << " N=" << s.N << " bias=" << with_bias;
    }
  }
}
