// Which of the hand-written CPU kernel sets runs: the build's baseline (AVX2 + FMA in the default build, plain
// x86-64 with PORTABLE=ON) or, where the host has AVX-512 (F, BW, DQ, VL: Skylake-SP and later, Zen 4 and later),
// the AVX-512 variants (files *_avx512.cpp, compiled for AVX-512 and called only after this check). One binary
// runs on either host. STARFLOW_CPU_ISA=avx2 keeps an AVX-512 host on the AVX2 kernels (for bits comparable
// with AVX2 hosts, or an A/B run).
#pragma once

namespace starflow::core::cpu {

enum class CpuIsa { kBaseline, kAvx512 };

// The kernel set in use: decided once from the host and STARFLOW_CPU_ISA (avx2 | avx512; any other value, or
// avx512 on a host or build without it, is an error naming the variable).
CpuIsa cpu_isa();
// Whether this build has AVX-512 kernels and this host runs them.
bool host_has_avx512();
// Tests and benchmarks: switch the kernel set (kAvx512 needs host_has_avx512()). Not while kernels run.
void set_cpu_isa(CpuIsa isa);
// "avx512", "avx2" or "portable": what the name of the kernel set in use is.
const char* cpu_isa_name(CpuIsa isa);

inline bool use_avx512() { return cpu_isa() == CpuIsa::kAvx512; }

}  // namespace starflow::core::cpu
