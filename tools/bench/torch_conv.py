# The reference side of `starflow bench conv`: the same convolutions in PyTorch (torch.nn.functional.conv2d, which
# runs oneDNN on x86), timed the same way. Called as
#   /usr/bin/python3 tools/bench/torch_conv.py THREADS RUNS 'JSON list of [B, Cin, H, W, Cout, k, stride, t, l, b, r]'
# and prints one line per case: the median milliseconds of RUNS timed calls after one untimed call.
import json
import sys
import time

import torch
import torch.nn.functional as F


def main():
    threads, runs, cases = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with torch.no_grad():
        for batch, cin, height, width, cout, kernel, stride, top, left, bottom, right in cases:
            x = torch.rand(batch, cin, height, width) * 2 - 1
            w = torch.rand(cout, cin, kernel, kernel) * 0.1
            b = torch.rand(cout)

            def call():
                if top == left == bottom == right:
                    return F.conv2d(x, w, b, stride=stride, padding=top)
                # diffusers' Downsample2D: an explicit pad, then an unpadded convolution.
                return F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride=stride)

            call()
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                call()
                times.append((time.perf_counter() - start) * 1e3)
            times.sort()
            print(f"{times[len(times) // 2]:.4f}", flush=True)


if __name__ == "__main__":
    main()
