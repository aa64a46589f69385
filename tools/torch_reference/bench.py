"""The reference side of `starflow bench train|sample`: times the model statement's training step or
sequential sampler on a model given as official JSON, after checking that torch's BLAS is OpenBLAS (or MKL)
and fast; with --serve, one timed run per request on stdin so that the C++ side can take turns with it."""
import ctypes
import json
import os
import statistics
import sys
import time

import torch

from model import build_model, loss_fn

def blas_provider():
    """Real path of the library that defines the sgemm_ torch calls. Debian's torch is built with
    BLAS_INFO=generic, i.e. against the soname libblas.so.3 (update-alternatives: OpenBLAS or the
    netlib reference); dlopen of that soname returns the instance already loaded into the process."""
    class DlInfo(ctypes.Structure):
        _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p),
                    ("sname", ctypes.c_char_p), ("saddr", ctypes.c_void_p)]
    try:
        fn = ctypes.CDLL("libblas.so.3").sgemm_
        info, libc = DlInfo(), ctypes.CDLL(None)
        libc.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
        if libc.dladdr(ctypes.cast(fn, ctypes.c_void_p).value, ctypes.byref(info)):
            return os.path.realpath(info.fname.decode())
    except (OSError, AttributeError):
        pass
    return None


def blas_check():
    """Refuses (exit 3) unless torch's sgemm comes from OpenBLAS (or MKL) and a 1024^2 sgemm is fast."""
    build = torch.__config__.show()
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b                                               # loads and warms the BLAS
    gflops = 2 * 1024 ** 3 / min(_timed(lambda: a @ b) for _ in range(3)) / 1e9
    if "BLAS_INFO=mkl" in build or "BLAS_INFO=open" in build:
        lib = "linked at build time: " + build.split("BLAS_INFO=")[1].split(",")[0]
    else:
        lib = blas_provider()
    bad = []
    if lib is None or not ("openblas" in lib.lower() or "mkl" in lib.lower()):
        bad.append(f"torch's sgemm_ comes from {lib or 'an unknown library'}, not OpenBLAS "
                   f"(the netlib reference BLAS makes the PyTorch side ~20x slower)")
    if gflops < 5.0:
        bad.append(f"a 1024^2 float32 matmul runs at only {gflops:.1f} GFLOP/s")
    if bad:
        print("torch_reference: REFUSING TO BENCHMARK: " + "; ".join(bad) + ". Install "
              "libopenblas0-openmp (alternative libblas.so.3) and run /usr/bin/python3.", file=sys.stderr)
        sys.exit(3)
    return lib, gflops


def busy_cores(dt=0.5):
    """CPU cores kept busy by other processes (from /proc/stat over dt seconds, while we sleep)."""
    def snap():
        v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return sum(v), v[3] + v[4]                     # total, idle + iowait
    (t0, i0), _, (t1, i1) = snap(), time.sleep(dt), snap()
    return (1 - (i1 - i0) / max(t1 - t0, 1)) * os.cpu_count()


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _timed_runs(fn, steps, serve):
    """`steps` timed runs; or, serving, one per "run" line on stdin, each answered with its ms, so that
    the caller can alternate them with its own runs (drifting load on a shared machine then hits both
    sides alike)."""
    if not serve:
        return [_timed(fn) for _ in range(steps)]
    print("ready", flush=True)
    times = []
    for line in sys.stdin:
        if line.strip() != "run":
            break
        times.append(_timed(fn))
        print(f"{1000 * times[-1]:.3f}", flush=True)
    if not times:
        raise SystemExit("torch_reference: --serve: no run was requested")
    return times


def bench(args, cfg):
    """args: the parsed --bench options (train: --batch required; sample: --batch default 16); cfg: the
    model, make_config of the --model-config JSON. Prints one JSON summary line; returns 0."""
    torch.set_num_threads(args.threads)
    busy = busy_cores()     # OpenMP timings collapse (up to 20x) when other processes use the cores
    if busy > 0.3:
        print(f"torch_reference: WARNING: other processes keep {busy:.1f} cores busy; with "
              f"{args.threads} OpenMP threads the timings are unreliable", file=sys.stderr)
    blas, gflops = blas_check()
    C, S = cfg["in_channels"], cfg["img_size"]
    L, E = cfg["txt_size"], cfg["txt_dim"]
    model = build_model(cfg, seed=0)
    g = torch.Generator().manual_seed(1234)
    res = dict(work=args.bench)
    if args.config:                 # the caller's name for the preset: a label in the summary only
        res["config"] = args.config
    if args.bench == "train":
        batch = args.batch
        x = torch.randn(batch, C, S, S, generator=g)
        y = torch.randn(batch, L, E, generator=g)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            z, lds, outs = model(x, y)
            loss_fn(z, lds, outs)["total"].backward()
            opt.step()
        for _ in range(2):
            step()
        times = _timed_runs(step, args.steps or 5, args.serve)
        ms = 1000 * sum(times) / len(times)
        res.update(batch=batch, ms_per_step=round(ms, 2), img_per_s=round(batch / ms * 1000, 2))
    else:
        batch = args.batch or 16
        noise = torch.randn(batch, C, S, S, generator=g)
        y = torch.randn(batch, L, E, generator=g)
        if args.cfg > 0:          # null caption: an "EOS" vector at row 0, zero padding after it
            y_null = torch.zeros_like(y)
            y_null[:, 0] = torch.randn(E, generator=g)
            y = torch.cat([y, y_null])
        run = lambda: model.reverse(noise, y, args.cfg)
        with torch.inference_mode():
            run()
            times = _timed_runs(run, args.steps or 2, args.serve)
        ms = 1000 * sum(times) / len(times)
        res.update(batch=batch, cfg=args.cfg, ms_per_batch=round(ms, 2),
                   img_per_s=round(batch / ms * 1000, 3))
    # The median is what the C++ side reports for its own runs: both sides compare the same statistic.
    res.update(ms_median=round(1000 * statistics.median(times), 2), ms_min=round(1000 * min(times), 2), runs=len(times), threads=torch.get_num_threads(),
               torch=torch.__version__, blas=blas, sgemm1024_gflops=round(gflops, 1),
               busy_cores_before=round(busy, 2), busy_cores_after=round(busy_cores(), 2))
    print(json.dumps(res))
    return 0
