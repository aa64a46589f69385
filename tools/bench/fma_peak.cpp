// fma_peak_gflops: see fma_peak.h.
#include "tools/bench/fma_peak.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>

#include "core/build_config.h"
#include "core/ops/cpu/cpu_isa.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace starflow::tools {

namespace {

constexpr int64_t kIterations = 50'000'000;
constexpr int kChains = 12;  // independent chains per thread: enough to cover the FMA latency on two pipes

// Best of three timings of `threads` threads each running kChains chains of `lanes`-wide FMAs via chains().
template <class Chains>
double best_rate(int threads, int lanes, Chains chains) {
  double best = 0.0;
  for (int round = 0; round < 3; ++round) {
    float sink = 0.f;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += chains();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (sink == 12345.f) std::printf(" ");  // keeps the chains live
    best = std::max(best, double(threads) * double(kIterations) * kChains * 2 * lanes / seconds * 1e-9);
  }
  return best;
}

#if defined(__AVX2__) && defined(__FMA__)
float avx2_chains() {
  __m256 a[kChains];
  for (int i = 0; i < kChains; ++i) a[i] = _mm256_set1_ps(1.f + 1e-7f * float(i));
  const __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-8f);
  for (int64_t it = 0; it < kIterations; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) a[i] = _mm256_fmadd_ps(a[i], b, c);
  __m256 s = a[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, a[i]);
  return _mm256_cvtss_f32(s);
}
#endif

#if defined(STARFLOW_AVX512_KERNELS)
// Compiled for AVX-512 by its target attribute; called only when cpu_isa() admits it.
__attribute__((target("avx512f"))) float avx512_chains() {
  __m512 a[kChains];
  for (int i = 0; i < kChains; ++i) a[i] = _mm512_set1_ps(1.f + 1e-7f * float(i));
  const __m512 b = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-8f);
  for (int64_t it = 0; it < kIterations; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) a[i] = _mm512_fmadd_ps(a[i], b, c);
  __m512 s = a[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_cvtss_f32(s);
}
#endif

}  // namespace

double fma_peak_gflops(int threads) {
#if defined(STARFLOW_AVX512_KERNELS)
  if (core::cpu::use_avx512()) return best_rate(threads, 16, avx512_chains);
#endif
#if defined(__AVX2__) && defined(__FMA__)
  return best_rate(threads, 8, avx2_chains);
#else
  (void)threads;
  return 0.0;
#endif
}

const char* fma_peak_isa() {
#if defined(__AVX2__) && defined(__FMA__)
  return core::cpu::use_avx512() ? "AVX-512" : "AVX2";
#else
  return "none";
#endif
}

}  // namespace starflow::tools
