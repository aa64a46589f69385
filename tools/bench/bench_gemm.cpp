// `starflow bench gemm`: float GEMM throughput of the OpenBLAS, oneDNN and Eigen backends, measured in the same
// run at the shapes one transformer layer trains with (qkv, out-proj, fc1, fc2; forward, dW and din), each as a
// share of the FMA peak of the host's widest ISA, so the default backend in core/ops/cpu/gemm.cpp is chosen on
// numbers rather than folklore.
#include <omp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/ops/cpu/gemm.h"

#include "tools/bench/fma_peak.h"
#include "tools/cpu_threads.h"
#include "tools/options.h"

namespace starflow::tools {

namespace {

using core::cpu::GemmBackend;

struct BenchOptions {
  int threads = 2;
  int runs = 10;
  int warmup = 3;
};


// One GEMM C[M,N] = op(A)·op(B) as the linear layer issues it.
struct GemmCase {
  std::string label;
  bool trans_a, trans_b;
  int64_t M, N, K;
  double flops() const { return 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K); }
};

// The three GEMMs of each of a layer's four linears, for a model of width C trained on `rows` tokens per
// step: forward out = in·Wᵀ, weight gradient dW = doutᵀ·in, input gradient din = dout·W.
std::vector<GemmCase> training_cases(int64_t C, int64_t rows) {
  struct Linear {
    const char* name;
    int64_t in_features, out_features;
  };
  const Linear linears[] = {{"qkv", C, 3 * C}, {"proj", C, C}, {"fc1", C, 4 * C}, {"fc2", 4 * C, C}};
  std::vector<GemmCase> cases;
  for (const Linear& l : linears) {
    const std::string prefix = "C=" + std::to_string(C) + " " + l.name;
    const int64_t K = l.in_features, N = l.out_features;
    cases.push_back({prefix + " fwd", false, true, rows, N, K});
    cases.push_back({prefix + " dW", true, false, N, K, rows});
    cases.push_back({prefix + " din", false, false, rows, K, N});
  }
  return cases;
}

// Operands for one case, stored densely (leading dimension = stored row length).
struct GemmBuffers {
  std::vector<float> a, b, c;
  int64_t lda, ldb, ldc;
  GemmBuffers(const GemmCase& g, std::mt19937& rng) {
    lda = g.trans_a ? g.M : g.K;
    ldb = g.trans_b ? g.K : g.N;
    ldc = g.N;
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    a.resize(static_cast<size_t>(g.M * g.K));
    b.resize(static_cast<size_t>(g.K * g.N));
    c.assign(static_cast<size_t>(g.M * g.N), 0.0f);
    for (float& x : a) x = dist(rng);
    for (float& x : b) x = dist(rng);
  }
};

// Median seconds of `runs` calls after `warmup` untimed ones. beta = 1 as in the dW accumulation, so
// every backend pays the same read of C.
double median_seconds(const GemmCase& g, GemmBuffers& buf, GemmBackend backend, const BenchOptions& options) {
  core::cpu::set_gemm_backend(backend);
  auto call = [&] {
    core::cpu::gemm<float>(g.trans_a, g.trans_b, g.M, g.N, g.K, 1.0f, buf.a.data(), buf.lda, buf.b.data(),
                           buf.ldb, 1.0f, buf.c.data(), buf.ldc);
  };
  for (int i = 0; i < options.warmup; ++i) call();
  std::vector<double> seconds;
  for (int i = 0; i < options.runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    call();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
  return seconds[seconds.size() / 2];
}

}  // namespace

int bench_gemm(int argc, char** argv) {
  BenchOptions options;
  // One table for the parser and the usage text (tools/options.h).
  const Option table[] = {
      int_option("--threads", options.threads, 1, "OpenMP threads for every backend (default 2)"),
      int_option("--runs", options.runs, 1, "timed runs per shape; the median is reported (default 10)"),
      int_option("--warmup", options.warmup, 0, "untimed runs before timing (default 3)")};
  const int parsed = parse_options("bench gemm", "Float GEMM at the training shapes: OpenBLAS, oneDNN and Eigen.",
                                   table, argc, argv);
  if (parsed >= 0) return parsed;
  set_cpu_threads(options.threads);

  // Token rows per step at the two reference widths: 2048 rows at width 256, 1024 rows at width 512.
  std::vector<GemmCase> cases = training_cases(256, 2048);
  for (GemmCase& g : training_cases(512, 1024)) cases.push_back(std::move(g));

  const GemmBackend saved = core::cpu::gemm_backend();
  const GemmBackend backends[] = {GemmBackend::openblas, GemmBackend::onednn, GemmBackend::eigen};
  constexpr int kBackends = 3;
  const double peak = fma_peak_gflops(options.threads);
  std::printf("float GEMM, %d thread(s), median of %d runs after %d warm-up; %s FMA peak measured now: %.1f GFLOP/s; "
              "default backend here: %s\n",
              options.threads, options.runs, options.warmup, fma_peak_isa(), peak,
              core::cpu::gemm_backend_name(saved));
  std::printf("%-20s %6s %6s %6s %10s %10s %10s %8s %8s\n", "shape", "M", "N", "K", "OpenBLAS", "oneDNN", "Eigen",
              "OB", "oneDNN");
  std::printf("%-20s %6s %6s %6s %10s %10s %10s %8s %8s\n", "", "", "", "", "GFLOP/s", "GFLOP/s", "GFLOP/s", "of peak",
              "of peak");
  std::mt19937 rng(1234);
  double total[kBackends] = {};
  for (const GemmCase& g : cases) {
    GemmBuffers buf(g, rng);
    double rate[kBackends];
    for (int b = 0; b < kBackends; ++b) {
      const double t = median_seconds(g, buf, backends[b], options);
      total[b] += t;
      rate[b] = g.flops() / t * 1e-9;
    }
    std::printf("%-20s %6lld %6lld %6lld %10.1f %10.1f %10.1f %7.0f%% %7.0f%%\n", g.label.c_str(),
                static_cast<long long>(g.M), static_cast<long long>(g.N), static_cast<long long>(g.K), rate[0], rate[1],
                rate[2], peak > 0 ? 100.0 * rate[0] / peak : 0.0, peak > 0 ? 100.0 * rate[1] / peak : 0.0);
    std::fflush(stdout);
  }
  core::cpu::set_gemm_backend(saved);
  std::printf("total (sum of medians, all shapes): OpenBLAS %.2f ms, oneDNN %.2f ms, Eigen %.2f ms "
              "(oneDNN/OpenBLAS speed %.2fx)\n",
              total[0] * 1e3, total[1] * 1e3, total[2] * 1e3, total[0] / total[1]);
  return 0;
}

}  // namespace starflow::tools
