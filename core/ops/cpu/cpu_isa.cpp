// cpu_isa: see the header. __builtin_cpu_supports reads CPUID and, for AVX-512, that the OS saves the ZMM
// state (XCR0), so a kernel it admits cannot fault with an illegal instruction.
#include "core/ops/cpu/cpu_isa.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "core/build_config.h"

namespace starflow::core::cpu {

namespace {

CpuIsa initial_isa() {
  const char* env = std::getenv("STARFLOW_CPU_ISA");
  const std::string want = env != nullptr ? env : "";
  if (want.empty()) return host_has_avx512() ? CpuIsa::kAvx512 : CpuIsa::kBaseline;
  if (want == "avx512") {
    if (!host_has_avx512())
      throw std::runtime_error("STARFLOW_CPU_ISA=avx512: this host or build has no AVX-512 (F, BW, DQ, VL) kernels");
    return CpuIsa::kAvx512;
  }
  if (want == "avx2" || want == "portable") return CpuIsa::kBaseline;
  throw std::runtime_error("STARFLOW_CPU_ISA=" + want + ": expected avx2 or avx512");
}

std::atomic<CpuIsa>& isa_slot() {
  static std::atomic<CpuIsa> slot{initial_isa()};
  return slot;
}

}  // namespace

bool host_has_avx512() {
#if defined(STARFLOW_AVX512_KERNELS)
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  return has;
#else
  return false;
#endif
}

CpuIsa cpu_isa() { return isa_slot().load(std::memory_order_relaxed); }

void set_cpu_isa(CpuIsa isa) {
  if (isa == CpuIsa::kAvx512 && !host_has_avx512())
    throw std::invalid_argument("set_cpu_isa: this host or build has no AVX-512 kernels");
  isa_slot().store(isa, std::memory_order_relaxed);
}

const char* cpu_isa_name(CpuIsa isa) {
  if (isa == CpuIsa::kAvx512) return "avx512";
#if defined(STARFLOW_SMALL_BATCH_KERNEL)
  return "avx2";
#else
  return "portable";
#endif
}

}  // namespace starflow::core::cpu
