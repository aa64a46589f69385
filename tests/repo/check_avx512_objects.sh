#!/usr/bin/env bash
# The AVX-512 kernel files (core/ops/cpu/*_avx512.cpp) must define nothing the rest of the binary could share:
# a weak (COMDAT) symbol compiled for AVX-512, e.g. an out-of-line std::vector or Eigen template, may be the
# copy the linker keeps for every caller, and an AVX2-only host would then fault outside any ISA check.
# Usage: check_avx512_objects.sh OBJECT_DIR   (the starflow_core objects of core/ops/cpu)
set -euo pipefail
dir=${1:?usage: check_avx512_objects.sh OBJECT_DIR}
shopt -s nullglob
objects=("$dir"/*_avx512.cpp.o)
((${#objects[@]} > 0)) || { echo "no *_avx512.cpp.o objects in $dir"; exit 1; }
status=0
for o in "${objects[@]}"; do
  # Weak and unique-global definitions (W, V, u): anything another object file could also define. Not
  # DW.ref.__gxx_personality_v0: a pointer to the C++ unwinder, the same data in every object with exceptions.
  shared=$(nm -C --defined-only "$o" | awk '$2 ~ /^[WVu]$/ && $3 != "DW.ref.__gxx_personality_v0"' || true)
  if [[ -n $shared ]]; then
    echo "$(basename "$o"): defines symbols other files may share (compiled for AVX-512):"
    echo "$shared"
    status=1
  fi
  exported=$(nm -C --defined-only "$o" | awk '$2 == "T"' | grep -vc "starflow::core::cpu::avx512::" || true)
  if [[ $exported != 0 ]]; then
    echo "$(basename "$o"): exports functions outside starflow::core::cpu::avx512"
    status=1
  fi
done
((status == 0)) && echo "${#objects[@]} AVX-512 objects define only their own avx512:: entry points"
exit $status
