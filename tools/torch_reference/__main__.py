"""starflow's own PyTorch statement of the STARFlow model, written from the STARFlow spec.

It is the reference side of the CPU benchmarks and is checked against the golden fixtures in
tests/golden/data/ first. Run this folder with Debian's /usr/bin/python3 (python3-torch 1.13, OpenBLAS):

  python3 tools/torch_reference --check-golden tests/golden/data   # float64 + float32 check, every fixture
  python3 tools/torch_reference --bench train  --model-config JSON --batch N [--config NAME] [--steps 5]
                                [--threads 2]
  python3 tools/torch_reference --bench sample --model-config JSON [--batch 16] [--config NAME] [--cfg W]
                                [--steps 2] [--threads 2]
  python3 tools/torch_reference --bench ... --serve   # after set-up and warm-up prints "ready", then times
                                                      # one run per "run" line on stdin (prints its ms), until EOF
  python3 tools/torch_reference --selftest            # reverse(forward(x)) == x, CFG no-ops
  python3 tools/torch_reference --forward W.safetensors --input IN.safetensors --out OUT.safetensors

--bench takes the model as the JSON that core::FlowConfig::to_official_json() prints: `starflow bench
train|sample` passes its presets (core/models/model_presets.cpp, their only definition) that way, with --config
NAME as the label of the JSON summary.

--forward imports weights exported by `starflow convert` (official names, `config` metadata), runs the
input file's `x` (+ `y`) forward, and `noise` (+ `y_null`, metadata `guidance`) through the sequential
reverse, in float64 from the float32 weights, and writes OUT in the golden-fixture layout
(param.*, input.*, forward.*, loss.*, reverse*.x), so `starflow check-golden OUT` compares the C++ model
with this statement on those weights within the float32 tolerances of the golden fixtures.

Modules (this folder is on sys.path when it runs, so they import each other by plain name): model (the
statement), safetensors_io, golden (--check-golden, --forward), bench (--bench), selftest (--selftest).
"""
import argparse
import json
import sys

from bench import bench
from golden import check_golden, forward_exported
from model import make_config
from selftest import selftest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check-golden", metavar="DIR")
    ap.add_argument("--bench", choices=["train", "sample"])
    ap.add_argument("--model-config", metavar="JSON",
                    help="--bench: the model, as core::FlowConfig::to_official_json() prints it")
    ap.add_argument("--config", metavar="NAME", help="--bench: the preset's name, a label in the JSON summary")
    ap.add_argument("--cfg", type=float, default=0.0, help="guidance weight for --bench sample")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (train 5, sample 2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--serve", action="store_true", help="--bench: time one run per 'run' line on stdin")
    ap.add_argument("--batch", type=int, default=None,
                    help="--bench: the batch (train: required; sample: images, default 16)")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--forward", metavar="WEIGHTS", help="exported weights (starflow convert) to import and run")
    ap.add_argument("--input", metavar="FILE", help="--forward: safetensors with x [, y, noise, y_null]")
    ap.add_argument("--out", metavar="FILE", help="--forward: where the golden-style results go")
    a = ap.parse_args()
    if a.check_golden:
        return check_golden(a.check_golden)
    if a.bench:
        # A wrong call is a usage error (exit 2) with its reason, before torch builds or times anything.
        if not a.model_config:
            ap.error("--bench needs --model-config JSON (the output of core::FlowConfig::to_official_json())")
        if a.bench == "train" and not a.batch:
            ap.error("--bench train needs --batch N")
        try:
            model = json.loads(a.model_config)
        except ValueError as e:
            ap.error(f"--model-config: not JSON: {e}")
        if not isinstance(model, dict):
            ap.error("--model-config: expected a JSON object")
        return bench(a, make_config(model))
    if a.selftest:
        return selftest()
    if a.forward:
        if not a.input or not a.out:
            ap.error("--forward needs --input and --out")
        return forward_exported(a.forward, a.input, a.out)
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
