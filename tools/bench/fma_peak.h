// The cores' float FMA peak, measured now (the ceiling each bench reports its kernels' share of).
#pragma once

namespace starflow::tools {

// GFLOP/s of `threads` threads running independent FMA chains at the width of the kernel set in use
// (core/ops/cpu/cpu_isa.h: 16 lanes on AVX-512 hosts, 8 on AVX2 ones); 0 without AVX2/FMA.
double fma_peak_gflops(int threads);
// The name of that width ("AVX-512", "AVX2" or "none").
const char* fma_peak_isa();

}  // namespace starflow::tools
