// fma_peak_gflops: see fma_peak.h.
#include "tools/bench/fma_peak.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace starflow::tools {

// Every thread runs 12 independent chains of 8-wide FMAs (enough to
// cover the FMA latency on two pipes), so the rate is the hardware's ceiling for any GEMM here. 0 without
// AVX2/FMA.
double fma_peak_gflops(int threads) {
#if defined(__AVX2__) && defined(__FMA__)
  constexpr int64_t kIterations = 50'000'000;
  double best = 0.0;
  for (int round = 0; round < 3; ++round) {
    float sink = 0.f;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      __m256 a[12];
      for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(1.f + 1e-7f * float(i));
      const __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-8f);
      for (int64_t it = 0; it < kIterations; ++it)
#pragma GCC unroll 12
        for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], b, c);
      __m256 s = a[0];
      for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
      sink += _mm256_cvtss_f32(s);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (sink == 12345.f) std::printf(" ");  // keeps the chains live
    best = std::max(best, double(threads) * double(kIterations) * 12 * 16 / seconds * 1e-9);
  }
  return best;
#else
  (void)threads;
  return 0.0;
#endif
}


}  // namespace starflow::tools
