// The cores' float FMA peak, measured now (the ceiling each bench reports its kernels' share of).
#pragma once

namespace starflow::tools {

// GFLOP/s of `threads` threads running independent 8-wide FMA chains; 0 without AVX2/FMA.
double fma_peak_gflops(int threads);

}  // namespace starflow::tools
