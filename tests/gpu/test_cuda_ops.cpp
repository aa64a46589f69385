// Every CUDA op (core/ops/cuda) against its CPU twin (core/ops/cpu, core/optim) on random inputs, forward and
// backward, in fp32 and bf16, with an explicit wrong-result count per output (nccl-tests style) and a table
// of the largest errors at the end. The bf16 runs feed the CPU reference the bf16-rounded inputs, so the
// comparison measures the op's own rounding, not the inputs'.
// Without a usable GPU every CudaOp test is skipped and the binary exits 77 (when nothing failed) so that
// ctest reports "Skipped". The GemmPlan tests (test_gemm_plans.cpp) run on the host everywhere.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "core/ops/cpu/attention.h"
#include "core/ops/cpu/attention_cached.h"
#include "core/ops/cpu/attention_dense.h"
#include "core/ops/cpu/embedding.h"
#include "core/ops/cpu/flow_head.h"
#include "core/ops/cpu/gated_activation.h"
#include "core/ops/cpu/gelu.h"
#include "core/ops/cpu/layernorm.h"
#include "core/ops/cpu/linear.h"
#include "core/ops/cpu/rmsnorm.h"
#include "core/ops/cpu/rmsnorm_gain.h"
#include "core/ops/cpu/rope.h"
#include "core/ops/cpu/tokens.h"
#include "core/ops/cuda/adamw.h"
#include "core/ops/cuda/attention.h"
#include "core/ops/cuda/attention_cached.h"
#include "core/ops/cuda/attention_dense.h"
#include "core/ops/cuda/blas.h"
#include "core/ops/cuda/cuda_check.h"
#include "core/ops/cuda/device_buffer.h"
#include "core/ops/cuda/elementwise.h"
#include "core/ops/cuda/embedding.h"
#include "core/ops/cuda/flow_head.h"
#include "core/ops/cuda/gated_activation.h"
#include "core/ops/cuda/gelu.h"
#include "core/ops/cuda/layernorm.h"
#include "core/ops/cuda/linear.h"
#include "core/ops/cuda/rmsnorm.h"
#include "core/ops/cuda/rmsnorm_gain.h"
#include "core/ops/cuda/rope.h"
#include "core/ops/cuda/tokens.h"
#include "core/optim/adamw.h"
#include "tests/gpu/gpu_test_util.h"

namespace starflow::core::cuda {

std::string g_no_gpu;  // why the CUDA tests skip; empty when a GPU is usable (declared in gpu_test_util.h)

namespace {

// ---- tolerances ----
// err = |gpu − cpu| / (|cpu| + rms(cpu)): relative, with the output's RMS as a floor so that elements that
// cancel to nearly zero are judged against the output's scale. An element is wrong when err > tolerance or
// it is not finite.
// fp32: 1e-5 everywhere (the two sides differ only in summation order and libm rounding).
// bf16: 1e-2 for ops that round once into bf16 (unit roundoff 2^-9 ≈ 2e-3, so a 5× margin); 4e-2 for
// attention, whose scores and probabilities are themselves stored in bf16 between the GEMMs.
template <class T>
struct Tolerance;
template <>
struct Tolerance<float> {
  static constexpr double single = 1e-5, attention = 1e-5;
};
template <>
struct Tolerance<bf16> {
  static constexpr double single = 1e-2, attention = 4e-2;
};
constexpr double kStatsTolerance = 1e-5;  // fp32 statistics (mean, rstd, rrms) and AdamW state in both modes

struct CheckResult {
  std::string op, type, output;
  size_t count;
  double max_err, tolerance;
  int64_t wrong;
};
std::vector<CheckResult>& check_results() {
  static std::vector<CheckResult> results;
  return results;
}

int64_t check(const std::string& op, const char* type, const std::string& output, const std::vector<float>& got,
              const std::vector<float>& want, double tolerance) {
  EXPECT_EQ(got.size(), want.size()) << op << " " << output;
  double sq = 0.0;
  for (float w : want) sq += double(w) * double(w);
  const double floor = std::max(std::sqrt(sq / std::max<size_t>(want.size(), 1)), 1e-30);
  double max_err = 0.0;
  int64_t wrong = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    const double err = std::abs(double(got[i]) - double(want[i])) / (std::abs(double(want[i])) + floor);
    const bool bad = !std::isfinite(got[i]) || !(err <= tolerance);
    if (std::isfinite(err)) max_err = std::max(max_err, err);
    if (bad) {
      if (wrong < 5)
        ADD_FAILURE() << op << " [" << type << "] " << output << "[" << i << "] = " << got[i] << ", CPU " << want[i]
                      << " (error " << err << " > " << tolerance << ")";
      ++wrong;
    }
  }
  check_results().push_back({op, type, output, want.size(), max_err, tolerance, wrong});
  EXPECT_EQ(wrong, 0) << op << " [" << type << "] " << output << ": " << wrong << " wrong of " << want.size();
  return wrong;
}

// ---- host ↔ device in either element type ----
float host_float(float x) { return x; }
float host_float(bf16 x) { return __bfloat162float(x); }
template <class T>
T host_cast(float x);
template <>
float host_cast<float>(float x) {
  return x;
}
template <>
bf16 host_cast<bf16>(float x) {
  return __float2bfloat16_rn(x);
}

// The values a T buffer holds for these floats: what the CPU reference must be fed.
template <class T>
std::vector<float> representable(std::vector<float> v) {
  for (float& x : v) x = host_float(host_cast<T>(x));
  return v;
}

template <class T>
DeviceBuffer<T> upload(const std::vector<float>& values) {
  std::vector<T> host(values.size());
  std::transform(values.begin(), values.end(), host.begin(), host_cast<T>);
  return DeviceBuffer<T>(std::span<const T>(host));
}

template <class T>
std::vector<float> download(const DeviceBuffer<T>& buffer) {
  const std::vector<T> host = buffer.download();
  std::vector<float> out(host.size());
  std::transform(host.begin(), host.end(), out.begin(), [](T x) { return host_float(x); });
  return out;
}

// Elements [offset, offset + count) of a device buffer, as floats.
template <class T>
std::vector<float> download(const DeviceBuffer<T>& buffer, size_t offset, size_t count) {
  std::vector<float> all = download(buffer);
  return std::vector<float>(all.begin() + offset, all.begin() + offset + count);
}

// Representable random values in [lo, hi] (fixed seeds: every run sees the same inputs).
template <class T>
std::vector<float> random_values(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return representable<T>(std::move(v));
}

float attention_scale(int64_t head_dim) {  // the official (dh^-1/4)², as the model computes it
  const double q = std::pow(static_cast<double>(head_dim), -0.25);
  return static_cast<float>(q * q);
}

// ---- fixtures ----
class CudaOp : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!g_no_gpu.empty()) GTEST_SKIP() << g_no_gpu;
  }
};

template <class T>
class CudaOpTyped : public CudaOp {};
struct TypeNames {
  template <class T>
  static std::string GetName(int) {
    return DataType<T>::name;
  }
};
using ElementTypes = ::testing::Types<float, bf16>;
TYPED_TEST_SUITE(CudaOpTyped, ElementTypes, TypeNames);

// ---- linear ----
// All tensors live in one flat buffer, each `misalign` elements past a 256-byte boundary, as parameter views
// into the flat parameter buffer can be: misalign ≠ 0 exercises the cuBLASLt alignment preferences and the
// fallbacks (plain cuBLAS, bias kernel).
template <class T>
void check_linear(int64_t M, int64_t K, int64_t N, int64_t misalign, bool with_bias) {
  using Tol = Tolerance<T>;
  const char* type = DataType<T>::name;
  const std::string op = "linear " + std::to_string(M) + "x" + std::to_string(K) + "x" + std::to_string(N) +
                         (misalign ? " misaligned" : "") + (with_bias ? "" : " no-bias");
  const auto in = random_values<T>(M * K, 11), weight = random_values<T>(N * K, 12), bias = random_values<T>(N, 13);
  const auto dout = random_values<T>(M * N, 14), dweight0 = random_values<T>(N * K, 15);
  const auto dbias0 = random_values<T>(N, 16), din0 = random_values<T>(M * K, 17);

  // Layout of the flat buffer: slots rounded up to 256 bytes, then shifted by misalign elements.
  std::vector<size_t> offsets;
  size_t total = 0;
  const std::vector<const std::vector<float>*> parts = {&in, &weight, &bias, &dout, &dweight0, &dbias0, &din0, &dout};
  const size_t slot_align = 256 / sizeof(T);
  for (const auto* part : parts) {
    total = (total + slot_align - 1) / slot_align * slot_align + misalign;
    offsets.push_back(total);
    total += part->size();
  }
  std::vector<float> flat(total, 0.0f);
  for (size_t i = 0; i < parts.size(); ++i) std::copy(parts[i]->begin(), parts[i]->end(), flat.begin() + offsets[i]);
  DeviceBuffer<T> device = upload<T>(flat);
  T* base = device.data();
  T *d_in = base + offsets[0], *d_w = base + offsets[1], *d_b = base + offsets[2], *d_dout = base + offsets[3];
  T *d_dw = base + offsets[4], *d_db = base + offsets[5], *d_din = base + offsets[6], *d_out = base + offsets[7];

  std::vector<float> want_out(M * N);
  cpu::linear_forward<float>(want_out.data(), in.data(), weight.data(), with_bias ? bias.data() : nullptr, M, K, N);
  linear_forward<T>(d_out, d_in, d_w, with_bias ? d_b : nullptr, M, K, N);
  check(op, type, "out", download(device, offsets[7], M * N), want_out, Tol::single);

  // Backward twice: din overwritten, then accumulated; dW and db accumulate both times.
  std::vector<float> want_dw = dweight0, want_db = dbias0, want_din = din0;
  for (const bool accumulate : {false, true}) {
    cpu::linear_backward<float>(want_din.data(), want_dw.data(), with_bias ? want_db.data() : nullptr, dout.data(),
                                in.data(), weight.data(), M, K, N, accumulate);
    linear_backward<T>(d_din, d_dw, with_bias ? d_db : nullptr, d_dout, d_in, d_w, M, K, N, accumulate);
    const std::string pass = accumulate ? " (+=)" : "";
    check(op, type, "din" + pass, download(device, offsets[6], M * K), want_din, Tol::single);
    check(op, type, "dweight" + pass, download(device, offsets[4], N * K), want_dw, Tol::single);
    if (with_bias) check(op, type, "dbias" + pass, download(device, offsets[5], N), want_db, Tol::single);
  }
}

TYPED_TEST(CudaOpTyped, Linear) {
  check_linear<TypeParam>(77, 96, 130, 0, true);
  check_linear<TypeParam>(512, 256, 768, 0, true);
  check_linear<TypeParam>(6, 4, 3, 0, true);  // patch-embedding-like: K of a few channels
  check_linear<TypeParam>(77, 96, 130, 1, true);
  check_linear<TypeParam>(64, 32, 48, 3, false);
}

// ---- norms ----
template <class T>
void check_layernorm(int64_t rows, int64_t C, float shift) {
  using Tol = Tolerance<T>;
  const char* type = DataType<T>::name;
  const std::string op = "layernorm " + std::to_string(rows) + "x" + std::to_string(C);
  auto in = random_values<T>(rows * C, 21);
  for (float& x : in) x += shift;  // a large mean: the two-pass variance must not cancel
  in = representable<T>(in);
  const auto gamma = random_values<T>(C, 22, 0.5f, 1.5f), beta = random_values<T>(C, 23);
  const auto dout = random_values<T>(rows * C, 24), dgamma0 = random_values<T>(C, 25);
  const auto dbeta0 = random_values<T>(C, 26), din0 = random_values<T>(rows * C, 27);

  std::vector<float> want_out(rows * C), want_mean(rows), want_rstd(rows);
  cpu::layernorm_forward<float>(want_out.data(), want_mean.data(), want_rstd.data(), in.data(), gamma.data(),
                                beta.data(), rows, C, 1e-5f);
  auto d_in = upload<T>(in), d_gamma = upload<T>(gamma), d_beta = upload<T>(beta), d_dout = upload<T>(dout);
  DeviceBuffer<T> d_out(rows * C);
  DeviceBuffer<float> d_mean(rows), d_rstd(rows);
  layernorm_forward<T>(d_out.data(), d_mean.data(), d_rstd.data(), d_in.data(), d_gamma.data(), d_beta.data(), rows,
                       C, 1e-5f);
  check(op, type, "out", download(d_out), want_out, Tol::single);
  check(op, type, "mean", d_mean.download(), want_mean, kStatsTolerance);
  check(op, type, "rstd", d_rstd.download(), want_rstd, kStatsTolerance);

  // The backward pass reads the CPU's statistics on both sides, so it is judged on its own.
  d_mean.upload(want_mean);
  d_rstd.upload(want_rstd);
  std::vector<float> want_din = din0, want_dgamma = dgamma0, want_dbeta = dbeta0;
  auto d_din = upload<T>(din0), d_dgamma = upload<T>(dgamma0), d_dbeta = upload<T>(dbeta0);
  for (const bool accumulate : {false, true}) {
    cpu::layernorm_backward<float>(want_din.data(), want_dgamma.data(), want_dbeta.data(), dout.data(), in.data(),
                                   want_mean.data(), want_rstd.data(), gamma.data(), rows, C, accumulate);
    layernorm_backward<T>(d_din.data(), d_dgamma.data(), d_dbeta.data(), d_dout.data(), d_in.data(), d_mean.data(),
                          d_rstd.data(), d_gamma.data(), rows, C, accumulate);
    const std::string pass = accumulate ? " (+=)" : "";
    check(op, type, "din" + pass, download(d_din), want_din, Tol::single);
    check(op, type, "dgamma" + pass, download(d_dgamma), want_dgamma, Tol::single);
    check(op, type, "dbeta" + pass, download(d_dbeta), want_dbeta, Tol::single);
  }
}

TYPED_TEST(CudaOpTyped, LayerNorm) {
  check_layernorm<TypeParam>(67, 96, 0.0f);
  check_layernorm<TypeParam>(300, 1000, 3.0f);
  check_layernorm<TypeParam>(5, 3072, 0.0f);
}

template <class T>
void check_rmsnorm(int64_t rows, int64_t C) {
  using Tol = Tolerance<T>;
  const char* type = DataType<T>::name;
  const std::string op = "rmsnorm " + std::to_string(rows) + "x" + std::to_string(C);
  const auto in = random_values<T>(rows * C, 31), g = random_values<T>(C, 32, -0.2f, 0.2f);
  const auto dout = random_values<T>(rows * C, 33), dg0 = random_values<T>(C, 34), din0 = random_values<T>(rows * C, 35);

  std::vector<float> want_out(rows * C), want_rrms(rows);
  cpu::rmsnorm_forward<float>(want_out.data(), want_rrms.data(), in.data(), g.data(), rows, C, 1e-6f);
  auto d_in = upload<T>(in), d_g = upload<T>(g), d_dout = upload<T>(dout);
  DeviceBuffer<T> d_out(rows * C);
  DeviceBuffer<float> d_rrms(rows);
  rmsnorm_forward<T>(d_out.data(), d_rrms.data(), d_in.data(), d_g.data(), rows, C, 1e-6f);
  check(op, type, "out", download(d_out), want_out, Tol::single);
  check(op, type, "rrms", d_rrms.download(), want_rrms, kStatsTolerance);

  d_rrms.upload(want_rrms);
  std::vector<float> want_din = din0, want_dg = dg0;
  auto d_din = upload<T>(din0), d_dg = upload<T>(dg0);
  for (const bool accumulate : {false, true}) {
    cpu::rmsnorm_backward<float>(want_din.data(), want_dg.data(), dout.data(), in.data(), want_rrms.data(), g.data(),
                                 rows, C, accumulate);
    rmsnorm_backward<T>(d_din.data(), d_dg.data(), d_dout.data(), d_in.data(), d_rrms.data(), d_g.data(), rows, C,
                        accumulate);
    const std::string pass = accumulate ? " (+=)" : "";
    check(op, type, "din" + pass, download(d_din), want_din, Tol::single);
    check(op, type, "dg" + pass, download(d_dg), want_dg, Tol::single);
  }
}

TYPED_TEST(CudaOpTyped, RmsNorm) {
  check_rmsnorm<TypeParam>(67, 96);
  check_rmsnorm<TypeParam>(300, 1024);
}

// ---- GELU ----
TYPED_TEST(CudaOpTyped, Gelu) {
  using T = TypeParam;
  const char* type = DataType<T>::name;
  const int64_t n = 100003;
  const auto in = random_values<T>(n, 41, -6.0f, 6.0f), dout = random_values<T>(n, 42);
  std::vector<float> want_out(n), want_din(n);
  cpu::gelu_forward<float>(want_out.data(), in.data(), n);
  cpu::gelu_backward<float>(want_din.data(), dout.data(), in.data(), n);
  auto d_in = upload<T>(in), d_dout = upload<T>(dout);
  DeviceBuffer<T> d_out(n), d_din(n);
  gelu_forward<T>(d_out.data(), d_in.data(), n);
  gelu_backward<T>(d_din.data(), d_dout.data(), d_in.data(), n);
  check("gelu", type, "out", download(d_out), want_out, Tolerance<T>::single);
  check("gelu", type, "din", download(d_din), want_din, Tolerance<T>::single);
}

// ---- the T5 encoder's ops ----
template <class T>
void check_rmsnorm_gain(int64_t rows, int64_t C) {
  using Tol = Tolerance<T>;
  const char* type = DataType<T>::name;
  const std::string op = "rmsnorm_gain " + std::to_string(rows) + "x" + std::to_string(C);
  const auto in = random_values<T>(rows * C, 131), w = random_values<T>(C, 132, 0.2f, 2.0f);
  const auto dout = random_values<T>(rows * C, 133), dw0 = random_values<T>(C, 134), din0 = random_values<T>(rows * C, 135);

  std::vector<float> want_out(rows * C), want_rrms(rows);
  cpu::rmsnorm_gain_forward<float>(want_out.data(), want_rrms.data(), in.data(), w.data(), rows, C, 1e-6f);
  auto d_in = upload<T>(in), d_w = upload<T>(w), d_dout = upload<T>(dout);
  DeviceBuffer<T> d_out(rows * C);
  DeviceBuffer<float> d_rrms(rows);
  rmsnorm_gain_forward<T>(d_out.data(), d_rrms.data(), d_in.data(), d_w.data(), rows, C, 1e-6f);
  check(op, type, "out", download(d_out), want_out, Tol::single);
  check(op, type, "rrms", d_rrms.download(), want_rrms, kStatsTolerance);

  d_rrms.upload(want_rrms);
  std::vector<float> want_din = din0, want_dw = dw0;
  auto d_din = upload<T>(din0), d_dw = upload<T>(dw0);
  for (const bool accumulate : {false, true}) {
    cpu::rmsnorm_gain_backward<float>(want_din.data(), want_dw.data(), dout.data(), in.data(), want_rrms.data(),
                                      w.data(), rows, C, accumulate);
    rmsnorm_gain_backward<T>(d_din.data(), d_dw.data(), d_dout.data(), d_in.data(), d_rrms.data(), d_w.data(), rows, C,
                             accumulate);
    const std::string pass = accumulate ? " (+=)" : "";
    check(op, type, "din" + pass, download(d_din), want_din, Tol::single);
    check(op, type, "dw" + pass, download(d_dw), want_dw, Tol::single);
  }
}

TYPED_TEST(CudaOpTyped, RmsNormGain) {
  check_rmsnorm_gain<TypeParam>(67, 96);
  check_rmsnorm_gain<TypeParam>(300, 2048);  // flan-t5-xl's width
}

TYPED_TEST(CudaOpTyped, GatedActivation) {
  using T = TypeParam;
  const char* type = DataType<T>::name;
  const int64_t n = 100003;
  const auto a = random_values<T>(n, 141, -6.0f, 6.0f), gate = random_values<T>(n, 142), dout = random_values<T>(n, 143);
  auto d_a = upload<T>(a), d_gate = upload<T>(gate), d_dout = upload<T>(dout);
  for (const Activation act : {Activation::kGeluTanh, Activation::kGeluErf, Activation::kRelu}) {
    for (const bool gated : {true, false}) {
      const std::string op = std::string("gated_activation ") + activation_name(act) + (gated ? " gated" : "");
      const float* g = gated ? gate.data() : nullptr;
      std::vector<float> want_out(n), want_da(n), want_dgate(n);
      cpu::gated_activation_forward<float>(want_out.data(), a.data(), g, n, act);
      cpu::gated_activation_backward<float>(want_da.data(), gated ? want_dgate.data() : nullptr, dout.data(), a.data(),
                                            g, n, act);
      DeviceBuffer<T> d_out(n), d_da(n), d_dgate(n);
      const T* dg = gated ? d_gate.data() : nullptr;
      gated_activation_forward<T>(d_out.data(), d_a.data(), dg, n, act);
      gated_activation_backward<T>(d_da.data(), gated ? d_dgate.data() : nullptr, d_dout.data(), d_a.data(), dg, n, act);
      check(op, type, "out", download(d_out), want_out, Tolerance<T>::single);
      check(op, type, "da", download(d_da), want_da, Tolerance<T>::single);
      if (gated) check(op, type, "dgate", download(d_dgate), want_dgate, Tolerance<T>::single);
    }
  }
}

TYPED_TEST(CudaOpTyped, Embedding) {
  using T = TypeParam;
  const char* type = DataType<T>::name;
  const int64_t V = 97, D = 2048, n = 300;  // repeated ids: 300 tokens over 97 rows
  const auto table = random_values<T>(V * D, 151), dout = random_values<T>(n * D, 152);
  const auto dtable0 = random_values<T>(V * D, 153);
  std::vector<int64_t> ids(n);
  std::mt19937 rng(154);
  for (int64_t& id : ids) id = static_cast<int64_t>(rng() % V);
  std::vector<float> want_out(n * D), want_dtable = dtable0;
  cpu::embedding_forward<float>(want_out.data(), ids.data(), table.data(), n, D);
  cpu::embedding_backward<float>(want_dtable.data(), dout.data(), ids.data(), n, D);
  DeviceBuffer<int64_t> d_ids{std::span<const int64_t>(ids)};
  auto d_table = upload<T>(table), d_dout = upload<T>(dout), d_dtable = upload<T>(dtable0);
  DeviceBuffer<T> d_out(n * D);
  embedding_forward<T>(d_out.data(), d_ids.data(), d_table.data(), n, D);
  embedding_backward<T>(d_dtable.data(), d_dout.data(), d_ids.data(), n, D);
  check("embedding", type, "out", download(d_out), want_out, 0.0f);  // a copy
  // bf16 rounds after every token of a repeated id (the CPU reference after the sum): about n/V roundings per row.
  check("embedding", type, "dtable (+=)", download(d_dtable), want_dtable,
        std::is_same_v<T, float> ? Tolerance<T>::single : 4 * Tolerance<T>::single);
}

// ---- RoPE ----
TYPED_TEST(CudaOpTyped, Rope) {
  using T = TypeParam;
  const char* type = DataType<T>::name;
  // 5 text rows then a 4×4 token grid, head_dim 64 with the text axis: the STARFlow deep-block table.
  const int64_t dh = 64, H = 3, C = H * dh, B = 2;
  const cpu::RopeTable<float> table = cpu::make_rope_table<float>(cpu::rope_angles(dh, 4, 4, 4, true, 5, true), dh);
  const DeviceRopeTable device_table = upload_rope_table(table);
  const int64_t S = table.rows;
  const auto qkv = random_values<T>(B * S * 3 * C, 51);
  // q and k of the whole sequence, forward then inverse (the backward pass).
  std::vector<float> want = qkv;
  auto d_qkv = upload<T>(qkv);
  for (const bool inverse : {false, true}) {
    cpu::rope_rotate<float>(want.data(), B, S, S * 3 * C, 3 * C, 2 * H, table, 0, inverse);
    rope_rotate<T>(d_qkv.data(), B, S, S * 3 * C, 3 * C, 2 * H, device_table, 0, inverse);
    check("rope", type, inverse ? "qkv (inverse)" : "qkv", download(d_qkv), want, Tolerance<T>::single);
  }
  // A decoding chunk: 4 rows starting at table row 9.
  const int64_t n = 4, start = 9;
  const auto chunk = random_values<T>(B * n * 3 * C, 52);
  std::vector<float> want_chunk = chunk;
  auto d_chunk = upload<T>(chunk);
  cpu::rope_rotate<float>(want_chunk.data(), B, n, n * 3 * C, 3 * C, 2 * H, table, start, false);
  rope_rotate<T>(d_chunk.data(), B, n, n * 3 * C, 3 * C, 2 * H, device_table, start, false);
  check("rope", type, "chunk at row 9", download(d_chunk), want_chunk, Tolerance<T>::single);
  EXPECT_THROW(rope_rotate<T>(d_chunk.data(), B, n, n * 3 * C, 3 * C, 2 * H, device_table, S - 1, false),
               std::invalid_argument);
}

// ---- causal attention ----
template <class T>
void check_attention(int64_t B, int64_t S, int64_t H, int64_t dh) {
  using Tol = Tolerance<T>;
  const char* type = DataType<T>::name;
  const std::string op = "attention B" + std::to_string(B) + " S" + std::to_string(S) + " H" + std::to_string(H) +
                         " dh" + std::to_string(dh);
  const int64_t C = H * dh, scores = B * H * S * S;
  const float scale = attention_scale(dh);
  const auto qkv = random_values<T>(B * S * 3 * C, 61, -1.5f, 1.5f), dout = random_values<T>(B * S * C, 62);

  std::vector<float> want_out(B * S * C), want_probs(scores), scratch(scores), want_dqkv(B * S * 3 * C);
  cpu::attention_forward<float>(want_out.data(), want_probs.data(), qkv.data(), B, S, H, dh, scale);
  cpu::attention_backward<float>(want_dqkv.data(), scratch.data(), dout.data(), qkv.data(), want_probs.data(), B, S, H,
                                 dh, scale);
  auto d_qkv = upload<T>(qkv), d_dout = upload<T>(dout);
  DeviceBuffer<T> d_out(B * S * C), d_probs(scores), d_scratch(scores), d_dqkv(B * S * 3 * C);
  attention_forward<T>(d_out.data(), d_probs.data(), d_qkv.data(), B, S, H, dh, scale);
  check(op, type, "out", download(d_out), want_out, Tol::attention);
  check(op, type, "probs", download(d_probs), want_probs, Tol::attention);
  attention_backward<T>(d_dqkv.data(), d_scratch.data(), d_dout.data(), d_qkv.data(), d_probs.data(), B, S, H, dh,
                        scale);
  check(op, type, "dqkv", download(d_dqkv), want_dqkv, Tol::attention);
}

TYPED_TEST(CudaOpTyped, Attention) {
  check_attention<TypeParam>(2, 37, 3, 64);   // B < H: loops over the batch, batches the heads
  check_attention<TypeParam>(5, 20, 2, 16);   // B > H: loops over the heads, batches the batch
  check_attention<TypeParam>(1, 150, 4, 64);  // a [text; image] sized sequence
}

// ---- dense attention (SD VAE mid block, T5 encoder) ----
template <class T>
void check_dense_attention(int64_t B, int64_t S, int64_t H, int64_t dh, bool bias_and_mask, float scale) {
  using Tol = Tolerance<T>;
  const char* type = DataType<T>::name;
  const std::string op = "attention_dense B" + std::to_string(B) + " S" + std::to_string(S) + " H" +
                         std::to_string(H) + " dh" + std::to_string(dh) + (bias_and_mask ? " bias+mask" : "");
  const int64_t n = B * S * H * dh, scores = B * H * S * S;
  const auto q = random_values<T>(n, 81, -1.5f, 1.5f), k = random_values<T>(n, 82, -1.5f, 1.5f);
  const auto v = random_values<T>(n, 83), dout = random_values<T>(n, 84);
  const auto bias = random_values<T>(H * S * S, 85, -2.f, 2.f);
  auto mask = random_values<T>(B * S, 86, -1.f, 0.f);
  for (size_t j = 0; j < mask.size(); j += 5) mask[j] = -1e9f;  // padded keys, as T5 masks them
  mask = representable<T>(mask);
  const auto dbias0 = random_values<T>(H * S * S, 87);  // dbias accumulates
  const float* bias_p = bias_and_mask ? bias.data() : nullptr;
  const float* mask_p = bias_and_mask ? mask.data() : nullptr;

  std::vector<float> want_out(n), want_probs(scores), scratch(scores), want_dq(n), want_dk(n), want_dv(n);
  std::vector<float> want_dbias = dbias0;
  cpu::attention_dense_forward<float>(want_out.data(), want_probs.data(), q.data(), k.data(), v.data(), bias_p,
                                      mask_p, B, S, H, dh, scale);
  cpu::attention_dense_backward<float>(want_dq.data(), want_dk.data(), want_dv.data(),
                                       bias_and_mask ? want_dbias.data() : nullptr, scratch.data(), dout.data(),
                                       q.data(), k.data(), v.data(), want_probs.data(), B, S, H, dh, scale);
  auto d_q = upload<T>(q), d_k = upload<T>(k), d_v = upload<T>(v), d_dout = upload<T>(dout);
  auto d_bias = upload<T>(bias), d_mask = upload<T>(mask), d_dbias = upload<T>(dbias0);
  DeviceBuffer<T> d_out(n), d_probs(scores), d_scratch(scores), d_dq(n), d_dk(n), d_dv(n);
  attention_dense_forward<T>(d_out.data(), d_probs.data(), d_q.data(), d_k.data(), d_v.data(),
                             bias_and_mask ? d_bias.data() : nullptr, bias_and_mask ? d_mask.data() : nullptr, B, S,
                             H, dh, scale);
  check(op, type, "out", download(d_out), want_out, Tol::attention);
  check(op, type, "probs", download(d_probs), want_probs, Tol::attention);
  attention_dense_backward<T>(d_dq.data(), d_dk.data(), d_dv.data(), bias_and_mask ? d_dbias.data() : nullptr,
                              d_scratch.data(), d_dout.data(), d_q.data(), d_k.data(), d_v.data(), d_probs.data(), B,
                              S, H, dh, scale);
  check(op, type, "dq", download(d_dq), want_dq, Tol::attention);
  check(op, type, "dk", download(d_dk), want_dk, Tol::attention);
  check(op, type, "dv", download(d_dv), want_dv, Tol::attention);
  if (bias_and_mask) check(op, type, "dbias (+=)", download(d_dbias), want_dbias, Tol::attention);
}

TYPED_TEST(CudaOpTyped, AttentionDense) {
  check_dense_attention<TypeParam>(2, 33, 3, 16, true, 1.0f);                  // T5: B < H, bias, mask, no scale
  check_dense_attention<TypeParam>(5, 20, 2, 8, true, 1.0f);                   // B > H
  check_dense_attention<TypeParam>(1, 256, 1, 128, false, 1.0f / std::sqrt(128.f));  // the VAE: one wide head
}

// ---- cached attention (sampling) ----
template <class T>
void check_cached_attention(int64_t B, int64_t H, int64_t dh, int64_t capacity, const std::vector<int64_t>& chunks) {
  using Tol = Tolerance<T>;
  const char* type = DataType<T>::name;
  const std::string op = "attention_cached B" + std::to_string(B) + " H" + std::to_string(H) + " dh" +
                         std::to_string(dh) + " cap" + std::to_string(capacity);
  const int64_t C = H * dh;
  const float scale = attention_scale(dh);
  cpu::KVCache<float> cpu_cache;
  cpu_cache.reset(B, H, dh, capacity);
  DeviceKVCache<T> cache;
  cache.reset(B, H, dh, capacity);
  int64_t start = 0;
  uint32_t seed = 71;
  for (const int64_t n : chunks) {
    const auto qkv = random_values<T>(B * n * 3 * C, seed++);
    std::vector<float> want(B * n * C);
    cpu::attention_cached_forward<float>(want.data(), cpu_cache, qkv.data(), B, n, start, scale);
    auto d_qkv = upload<T>(qkv);
    DeviceBuffer<T> d_out(B * n * C);
    attention_cached_forward<T>(d_out.data(), cache, d_qkv.data(), B, n, start, scale);
    check(op, type, "out [" + std::to_string(start) + ", " + std::to_string(start + n) + ")", download(d_out), want,
          Tol::single);
    start += n;
  }
  // The caches hold the same numbers, both [B, H, cap, dh].
  const std::vector<float> k = download(cache.k), v = download(cache.v);
  std::vector<float> want_k(k.size()), got_k(k.size()), want_v(v.size()), got_v(v.size());
  size_t i = 0;
  for (int64_t bh = 0; bh < B * H; ++bh)
    for (int64_t t = 0; t < start; ++t)
      for (int64_t d = 0; d < dh; ++d, ++i) {
        want_k[i] = cpu_cache.k[(bh * capacity + t) * dh + d];
        got_k[i] = k[(bh * capacity + t) * dh + d];
        want_v[i] = cpu_cache.v[(bh * capacity + t) * dh + d];
        got_v[i] = v[(bh * capacity + t) * dh + d];
      }
  want_k.resize(i), got_k.resize(i), want_v.resize(i), got_v.resize(i);
  check(op, type, "cached k", got_k, want_k, 0.0);
  check(op, type, "cached v", got_v, want_v, 0.0);
  EXPECT_THROW(attention_cached_forward<T>(nullptr, cache, nullptr, B, capacity - start + 1, start, scale),
               std::out_of_range);
}

TYPED_TEST(CudaOpTyped, AttentionCached) {
  check_cached_attention<TypeParam>(2, 3, 32, 40, {17, 1, 5, 1});
  check_cached_attention<TypeParam>(2, 4, 64, 1152, {128, 1, 1, 7});
  // Over 12k keys: the scores need more than 48 KB of shared memory (the opt-in path).
  check_cached_attention<TypeParam>(1, 1, 16, 12600, {12400, 1});
}

// ---- flow head ----
template <class T>
void check_flow_head(const FlowHeadOptions& opt) {
  using Tol = Tolerance<T>;
  const char* type = DataType<T>::name;
  const std::string op = std::string("flow_head clip ") + std::to_string(int(opt.soft_clip)) +
                         (opt.softplus ? " softplus" : " exp");
  const int64_t rows = 50, D = 12;
  const auto o = random_values<T>(rows * 2 * D, 81, -8.0f, 8.0f), v = random_values<T>(rows * D, 82, -2.0f, 2.0f);
  const auto dz = random_values<T>(rows * D, 83);
  const float dlogdet = -0.37f;
  std::vector<float> want_z(rows * D), want_logdet(rows * D), want_sigma(rows * D), want_mu(rows * D);
  std::vector<float> want_do(rows * 2 * D), want_dv(rows * D);
  cpu::flow_head_forward<float>(want_z.data(), want_logdet.data(), o.data(), v.data(), rows, D, opt);
  cpu::flow_head_sigma_mu<float>(want_sigma.data(), want_mu.data(), o.data(), rows, D, opt);
  cpu::flow_head_backward<float>(want_do.data(), want_dv.data(), dz.data(), dlogdet, o.data(), v.data(), rows, D, opt);
  auto d_o = upload<T>(o), d_v = upload<T>(v), d_dz = upload<T>(dz);
  DeviceBuffer<T> d_z(rows * D), d_logdet(rows * D), d_sigma(rows * D), d_mu(rows * D), d_do(rows * 2 * D),
      d_dv(rows * D);
  cuda::flow_head_forward<T>(d_z.data(), d_logdet.data(), d_o.data(), d_v.data(), rows, D, opt);
  cuda::flow_head_sigma_mu<T>(d_sigma.data(), d_mu.data(), d_o.data(), rows, D, opt);
  cuda::flow_head_backward<T>(d_do.data(), d_dv.data(), d_dz.data(), dlogdet, d_o.data(), d_v.data(), rows, D, opt);
  check(op, type, "z", download(d_z), want_z, Tol::single);
  check(op, type, "logdet", download(d_logdet), want_logdet, Tol::single);
  check(op, type, "sigma", download(d_sigma), want_sigma, Tol::single);
  check(op, type, "mu", download(d_mu), want_mu, Tol::single);
  check(op, type, "d_o", download(d_do), want_do, Tol::single);
  check(op, type, "dv", download(d_dv), want_dv, Tol::single);
}

TYPED_TEST(CudaOpTyped, FlowHead) {
  check_flow_head<TypeParam>({4.0, true});
  check_flow_head<TypeParam>({0.0, false});
}

// ---- AdamW ----
// fp32 master parameters and moments; the gradients in the test's element type; two steps (bias
// corrections differ) at two learning rates.
TYPED_TEST(CudaOpTyped, AdamW) {
  using G = TypeParam;
  const char* type = DataType<G>::name;
  const int64_t n = 100003;
  const AdamWConfig cfg{0.9, 0.95, 1e-8, 0.1};
  std::vector<float> params = random_values<float>(n, 91);
  core::AdamW<float> optimizer(n, cfg);
  DeviceBuffer<float> d_params{std::span<const float>(params)}, d_m(n), d_v(n);
  d_m.zero();
  d_v.zero();
  DeviceBuffer<bf16> d_params_bf16(n);
  const double lrs[] = {1e-3, 9e-4};
  for (int step = 1; step <= 2; ++step) {
    const auto grads = random_values<G>(n, 92 + step, -0.1f, 0.1f);
    optimizer.step(std::span<float>(params), std::span<const float>(grads), lrs[step - 1]);
    auto d_grads = upload<G>(grads);
    adamw_update<G>(d_params.data(), d_m.data(), d_v.data(), d_grads.data(), n, cfg, lrs[step - 1], step,
                    d_params_bf16.data());
    const std::string at = " step " + std::to_string(step);
    const std::vector<float> got = d_params.download();
    check("adamw", type, "params" + at, got, params, kStatsTolerance);
    check("adamw", type, "m" + at, d_m.download(), optimizer.first_moment(), kStatsTolerance);
    check("adamw", type, "v" + at, d_v.download(), optimizer.second_moment(), kStatsTolerance);
    check("adamw", type, "params bf16" + at, download(d_params_bf16), representable<bf16>(got), 0.0);
  }
  EXPECT_THROW(adamw_update<G>(d_params.data(), d_m.data(), d_v.data(), static_cast<const G*>(nullptr), n, cfg, 1e-3, 0),
               std::invalid_argument);
}

// ---- layout and elementwise utilities (exact: pure data movement or one rounding) ----
TYPED_TEST(CudaOpTyped, Tokens) {
  using T = TypeParam;
  const char* type = DataType<T>::name;
  const int64_t B = 2, C = 4, H = 8, W = 6, p = 2, n_tokens = (H / p) * (W / p), D = p * p * C;
  const auto image = random_values<T>(B * C * H * W, 101);
  std::vector<float> want_tokens(image.size()), want_image(image.size()), want_flip(image.size());
  cpu::patchify<float>(want_tokens.data(), image.data(), B, C, H, W, p);
  cpu::unpatchify<float>(want_image.data(), want_tokens.data(), B, C, H, W, p);
  cpu::permute_tokens<float>(want_flip.data(), want_tokens.data(), B, n_tokens, D, true);
  auto d_image = upload<T>(image);
  DeviceBuffer<T> d_tokens(image.size()), d_back(image.size()), d_flip(image.size());
  patchify<T>(d_tokens.data(), d_image.data(), B, C, H, W, p);
  unpatchify<T>(d_back.data(), d_tokens.data(), B, C, H, W, p);
  permute_tokens<T>(d_flip.data(), d_tokens.data(), B, n_tokens, D, true);
  check("tokens", type, "patchify", download(d_tokens), want_tokens, 0.0);
  check("tokens", type, "unpatchify", download(d_back), want_image, 0.0);
  check("tokens", type, "permute flip", download(d_flip), want_flip, 0.0);
  permute_tokens<T>(d_flip.data(), d_tokens.data(), B, n_tokens, D, false);
  check("tokens", type, "permute identity", download(d_flip), want_tokens, 0.0);
}

TYPED_TEST(CudaOpTyped, AddAndConvert) {
  using T = TypeParam;
  const char* type = DataType<T>::name;
  const int64_t n = 4099;
  const auto a = random_values<T>(n, 111), b = random_values<T>(n, 112);
  std::vector<float> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = a[i] + b[i];
  auto d_a = upload<T>(a), d_b = upload<T>(b);
  add<T>(d_a.data(), d_a.data(), d_b.data(), n);  // in place, as a residual add is used
  check("add", type, "out", download(d_a), representable<T>(want), 0.0);

  const auto x = random_values<float>(n, 113, -100.0f, 100.0f);
  DeviceBuffer<float> d_x{std::span<const float>(x)}, d_back(n);
  DeviceBuffer<bf16> d_x16(n);
  convert(d_x16.data(), d_x.data(), n);
  convert(d_back.data(), d_x16.data(), n);
  check("convert", type, "fp32->bf16->fp32", d_back.download(), representable<bf16>(x), 0.0);
}

void print_results() {
  if (check_results().empty()) return;
  std::printf("\n# %-44s %-5s %-26s %9s %10s %8s %6s\n", "op", "type", "output", "count", "max err", "tol", "wrong");
  int64_t wrong = 0;
  for (const CheckResult& r : check_results()) {
    std::printf("  %-44s %-5s %-26s %9zu %10.3e %8.1e %6lld\n", r.op.c_str(), r.type.c_str(), r.output.c_str(),
                r.count, r.max_err, r.tolerance, static_cast<long long>(r.wrong));
    wrong += r.wrong;
  }
  std::printf("# Checks: %zu\n# Wrong results: %lld\n", check_results().size(), static_cast<long long>(wrong));
}

}  // namespace
}  // namespace starflow::core::cuda

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  using starflow::core::cuda::g_no_gpu;
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess)
    g_no_gpu = std::string("no usable CUDA device (") + cudaGetErrorString(status) + ")";
  else if (devices == 0)
    g_no_gpu = "no CUDA device";
  if (g_no_gpu.empty()) {
    cudaDeviceProp prop{};
    cudaCheck(cudaGetDeviceProperties(&prop, 0));
    int runtime = 0, driver = 0;
    cudaCheck(cudaRuntimeGetVersion(&runtime));
    cudaCheck(cudaDriverGetVersion(&driver));
    std::printf("# device 0: %s, sm_%d%d, %d SMs, %.1f GiB; CUDA runtime %d, driver %d\n", prop.name, prop.major,
                prop.minor, prop.multiProcessorCount, prop.totalGlobalMem / double(1 << 30), runtime, driver);
  } else {
    std::printf("# %s: the CudaOp and CudaModel tests skip\n", g_no_gpu.c_str());
  }
  const int result = RUN_ALL_TESTS();
  starflow::core::cuda::print_results();
  const auto* unit = ::testing::UnitTest::GetInstance();
  // GPU tests were selected but could not run: tell ctest (SKIP_RETURN_CODE 77) and tools/gpu-check.sh, so
  // that host-only passes never read as a GPU pass.
  if (result == 0 && !g_no_gpu.empty() && unit->skipped_test_count() > 0) return 77;
  return result;
}
