// The build's switches, in one place: every file that branches on how it was built includes this header (not
// an op header for its macro). They follow from the compiler's target flags, which CMake sets (PORTABLE=OFF:
// -march=haswell, i.e. AVX2 + FMA; PORTABLE=ON: generic x86-64).
#pragma once

// The hand-written AVX2 + FMA CPU kernels (small-batch linear, the fused decode step and its team ops).
#if defined(__AVX2__) && defined(__FMA__)
#define STARFLOW_SMALL_BATCH_KERNEL 1
#endif

// Their AVX-512 variants (core/ops/cpu/*_avx512.cpp, compiled with AVX-512 flags, chosen at run time by
// core/ops/cpu/cpu_isa.h): built beside the AVX2 kernels; PORTABLE builds have neither.
#if defined(STARFLOW_SMALL_BATCH_KERNEL)
#define STARFLOW_AVX512_KERNELS 1
#endif
