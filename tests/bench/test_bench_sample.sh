#!/usr/bin/env bash
# `starflow bench sample` against the PyTorch reference, run for run (tools/torch_reference --serve):
#  1. with the real reference (Debian's python3-torch): both sampling rows print our time, the reference's
#     and their ratio, and the command succeeds;
#  2. a reference that refuses to start, and one that dies in the middle of the session: our timings are
#     still printed, the reason is one line, the exit status is 1, and nothing hangs or is left running.
# Part 1 skips (77 overall if it is the only part that could run) without /usr/bin/python3's torch.
# Usage: test_bench_sample.sh STARFLOW
set -euo pipefail
starflow=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OMP_NUM_THREADS=2

# 2a. a reference that refuses (as the real one does on netlib BLAS): its stderr line passes through. It is a
# folder with a __main__.py, as the real one is (2b is a single script: STARFLOW_TORCH_REFERENCE takes both).
mkdir "$dir/refuses"
cat > "$dir/refuses/__main__.py" <<'PY'
import sys
print("torch_reference: refusing: reference BLAS in use", file=sys.stderr)
sys.exit(3)
PY
set +e
STARFLOW_TORCH_REFERENCE=$dir/refuses timeout 120 "$starflow" bench sample --batch 2 --runs 1 > "$dir/out" 2> "$dir/err"
rc=$?
set -e
[[ $rc -eq 1 ]] || { cat "$dir/out" "$dir/err"; fail "refusing reference: exit $rc, expected 1"; }
grep -q "refusing: reference BLAS in use" "$dir/err" || fail "the reference's reason was not shown"
grep -q "no PyTorch reference: PyTorch reference did not start" "$dir/err" || { cat "$dir/err"; fail "no one-line reason"; }
[[ $(grep -cE "^sequential( cfg w=[0-9.]+)? +[0-9.]+ " "$dir/out") -eq 2 ]] || { cat "$dir/out"; fail "our timings missing"; }

# 2b. a reference that is ready, answers one run, then dies: no hang, no SIGPIPE death, exit 1.
cat > "$dir/dies.py" <<'PY'
import sys
print("ready", flush=True)
sys.stdin.readline()
print("12.5", flush=True)
sys.stdin.readline()
sys.exit(5)
PY
set +e
STARFLOW_TORCH_REFERENCE=$dir/dies.py timeout 120 "$starflow" bench sample --batch 2 --runs 3 > "$dir/out" 2> "$dir/err"
rc=$?
set -e
[[ $rc -eq 1 ]] || { cat "$dir/out" "$dir/err"; fail "dying reference: exit $rc, expected 1"; }
grep -q "no PyTorch reference: PyTorch reference: its output ended" "$dir/err" || { cat "$dir/err"; fail "no reason for the dead reference"; }
[[ $(grep -cE "^sequential( cfg w=[0-9.]+)? +[0-9.]+ " "$dir/out") -eq 2 ]] || { cat "$dir/out"; fail "our timings missing"; }

# 1. the real reference.
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "SKIP part 1: /usr/bin/python3 has no torch (python3-torch)"
  exit 0
fi
timeout 300 "$starflow" bench sample --batch 2 --runs 2 > "$dir/out" 2> "$dir/err" || { cat "$dir/out" "$dir/err"; fail "bench sample"; }
for row in "sequential " "sequential cfg"; do
  grep -E "^$row" "$dir/out" | grep -qE " [0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+x$" ||
    { cat "$dir/out"; fail "row '$row' has no reference time and ratio"; }
done
echo "PASS"
