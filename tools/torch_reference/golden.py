"""Checks the model statement (model.py): against the golden fixtures in tests/golden/data/ (--check-golden,
float64 and float32, every group a fixture holds), and on weights exported by `starflow convert`
(--forward: writes golden-style results that `starflow check-golden` compares with the C++ model)."""
import glob
import json
import os

import numpy as np
import torch

from model import LATENT_LAMBDA, Model, UnsupportedConfig, denoise, loss_fn, make_config
from safetensors_io import read_safetensors, write_safetensors

F32_TOL = {  # group -> (threshold, 'rel' = max|d|/max|ref| or 'abs' = max|d|), tests/golden/data/README.md
    "forward.z": (1e-5, "rel"), "forward.outputs": (1e-5, "rel"), "forward.logdet": (2e-5, "rel"),
    "loss": (5e-6, "rel"), "grad.param": (1e-4, "rel"), "grad.input.x": (1e-4, "rel"),
    "aux.rope": (1e-6, "abs"), "reverse.x": (1e-5, "rel"), "reverse.seq": (1e-5, "rel"),
    "reverse_cfg.x": (1e-5, "rel"), "denoise.x": (1e-5, "rel"), "denoise_cfg.x": (1e-5, "rel"),
    "adamw1": (1e-6, "abs")}
F64_TOL = 1e-9


def compare(mine, ref):
    """-> (rel, abs, excess, n_bits). excess discounts the one F32 rounding of the stored float64
    result: max(|d| - ulp32(ref)/2, 0) / max|ref| (= rel for F64-stored tensors); n_bits counts the
    elements where float32(mine) is not bit-identical to an F32-stored reference."""
    m = mine.detach().double().numpy().reshape(ref.shape)
    r = ref.astype(np.float64)
    d = np.abs(m - r)
    scale = max(np.abs(r).max(), 1e-300)
    if ref.dtype == np.float32:
        excess = np.maximum(d - 0.5 * np.abs(np.spacing(ref)).astype(np.float64), 0).max() / scale
        nbits = int((m.astype(np.float32) != ref).sum())
    else:
        excess, nbits = d.max() / scale, 0
    return d.max() / scale, d.max(), excess, nbits


def is_official_buffer(name):
    """The official state_dict's deprecated buffers (var, blocks.k.attn_mask, feat_rope.freqs_*), which this
    statement does not create: fixtures and `starflow convert` exports carry them, and they are checked there."""
    return name == "var" or name.endswith(".attn_mask") or name.startswith("feat_rope.")


def run_case(t, meta, cfg, dtype):
    """Runs everything on one fixture in `dtype`; returns {group: [(name, mine, ref)]}."""
    model = Model(cfg)
    params = {k[6:]: torch.from_numpy(v.copy()) for k, v in t.items()
              if k.startswith("param.") and not is_official_buffer(k[6:])}
    model.load_state_dict(params, strict=True)
    model.to(dtype)
    tt = lambda k: torch.from_numpy(t[k].copy()).to(dtype)
    x = tt("input.x").requires_grad_(True)
    y = tt("input.y") if "input.y" in t else None
    out, K = {}, cfg["num_blocks"]
    add = lambda g, name, mine: out.setdefault(g, []).append((name, mine, t[name]))
    z, lds, outs = model(x, y)
    losses = loss_fn(z, lds, outs, float(meta.get("latent_norm_regularization", LATENT_LAMBDA)))
    losses["total"].backward()
    add("forward.z", "forward.z", z)
    add("grad.input.x", "grad.input.x", x.grad)
    for k in range(K + 1):
        add("forward.outputs", f"forward.outputs.{k}", outs[k])
        if k < K:
            add("forward.logdet", f"forward.logdet.{k}", lds[k])
    for k, v in losses.items():
        add("loss", f"loss.{k}", v)
    add("aux.rope", "aux.rope.shallow", model.blocks[0].angles.to(dtype))
    add("aux.rope", "aux.rope.top", model.blocks[-1].angles.to(dtype))
    noise, sn = tt("input.sample_noise"), float(meta.get("noise_std", 0.3))
    xr, seq = model.reverse(noise, y)
    add("reverse.x", "reverse.x", xr)
    for k in range(K + 1):
        add("reverse.seq", f"reverse.seq.{k}", seq[k])
    add("denoise.x", "denoise.x", denoise(model, xr, y, sn))
    if y is not None and "reverse_cfg.x" in t:
        xc, _ = model.reverse(noise, torch.cat([y, tt("input.y_null")]), float(meta["guidance"]))
        add("reverse_cfg.x", "reverse_cfg.x", xc)
        add("denoise_cfg.x", "denoise_cfg.x", denoise(model, xc, y, sn))
    # AdamW last (it changes the parameters). float64 uses our own float64 gradients (the fixture
    # used full-precision ones); float32 is fed the fixture's grad.* (the fixtures' tolerance table).
    for n, p in model.named_parameters():
        add("grad.param", f"grad.{n}", p.grad.clone())
        if dtype == torch.float32:
            p.grad = tt(f"grad.{n}")
    ad = json.loads(meta["adamw"])
    torch.optim.AdamW(model.parameters(), lr=ad["lr"], betas=tuple(ad["betas"]), eps=ad["eps"],
                      weight_decay=ad["weight_decay"]).step()
    for n, p in model.named_parameters():
        add("adamw1", f"adamw1.{n}", p.detach())
    return out


def check_golden(folder):
    """Every STARFlow fixture (tiny_*.safetensors) in `folder`, in name order, in float64 and in float32; 0 if
    all groups pass. A fixture whose config asks for a switch this statement does not implement (the
    tiny_options_* files) is listed as skipped with the reason; at least one fixture must run."""
    files = sorted(glob.glob(os.path.join(folder, "tiny_*.safetensors")))
    if not files:
        raise SystemExit(f"no STARFlow fixtures (tiny_*.safetensors) in {folder}")
    ok, ran = True, 0
    for path in files:
        t, meta = read_safetensors(path)
        try:
            cfg = make_config(json.loads(meta["config"]))
        except UnsupportedConfig as e:
            print(f"\n== {os.path.basename(path)}  SKIP: {e}")
            continue
        ran += 1
        r64 = run_case(t, meta, cfg, torch.float64)
        r32 = run_case(t, meta, cfg, torch.float32)
        print(f"\n== {os.path.basename(path)}  (f64: max|d|/max|ref| raw; excess over the F32 "
              f"storage rounding, limit {F64_TOL:g}; f32: the fixtures' tolerances)")
        print(f"{'group':<16}{'n':>4}{'f64 raw':>11}{'f64 excess':>12}{'f64 !=bits':>11}"
              f"{'f32':>11}{'f32 limit':>14}  result")
        for g in r64:
            c64 = [compare(m, ref) for _, m, ref in r64[g]]
            c32 = [compare(m, ref) for _, m, ref in r32[g]]
            lim, kind = F32_TOL[g]
            raw64, ex64 = max(c[0] for c in c64), max(c[2] for c in c64)
            nb = f"{sum(c[3] for c in c64)}/{sum(ref.size for _, _, ref in r64[g])}"
            e32 = max(c[0] if kind == "rel" else c[1] for c in c32)
            good = ex64 <= F64_TOL and e32 <= lim
            ok &= good
            print(f"{g:<16}{len(c64):>4}{raw64:>11.2e}{ex64:>12.2e}{nb:>11}{e32:>11.2e}{lim:>9.0e} {kind}"
                  f"  {'ok' if good else 'FAIL'}")
    ok &= ran > 0
    print("\ncheck-golden:", "PASS" if ok else "FAIL", f"({ran} of {len(files)} fixtures ran)")
    return 0 if ok else 1

# --------------------------------------------------------------------------- exported weights, forward
def forward_exported(weights_path, input_path, out_path):
    """Imports `starflow convert` output (official names, `config` metadata) into this statement of the
    model, runs the input file's `x` (+ `y`) forward and its `noise` (+ `y_null`, metadata `guidance`)
    through the sequential reverse, in float64 from the float32 weights, and writes OUT in the golden-fixture
    layout (param.*, input.*, forward.*, loss.*, reverse*.x): `starflow check-golden OUT` then compares the
    C++ model with this statement on those weights within the fixtures' float32 tolerances (F32_TOL)."""
    w, wmeta = read_safetensors(weights_path)
    if "config" not in wmeta:
        raise SystemExit(f"{weights_path}: no 'config' metadata (not a `starflow convert` export)")
    cfg = make_config(json.loads(wmeta["config"]))
    model = Model(cfg)
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in w.items()
                           if not is_official_buffer(k)}, strict=True)
    inp, imeta = read_safetensors(input_path)
    if "x" not in inp:
        raise SystemExit(f"{input_path}: no tensor 'x'")
    conditional = cfg["txt_size"] > 0
    if conditional and "y" not in inp:
        raise SystemExit(f"{input_path}: the model is conditional: no tensor 'y'")
    # What the import produced, as float32: the fixture's param.* (check-golden loads these).
    out = {"param." + k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    model.double()
    f64 = lambda k: torch.from_numpy(inp[k].astype(np.float32)).double()
    x, y = f64("x"), f64("y") if conditional else None
    out["input.x"] = inp["x"].astype(np.float32)
    if conditional:
        out["input.y"] = inp["y"].astype(np.float32)
    lam = float(imeta.get("latent_norm_regularization", LATENT_LAMBDA))
    with torch.no_grad():
        z, lds, outs = model(x, y)
        losses = loss_fn(z, lds, outs, lam)
    out["forward.z"] = z.numpy()
    for k, o in enumerate(outs):
        out[f"forward.outputs.{k}"] = o.numpy()
    for k, ld in enumerate(lds):
        out[f"forward.logdet.{k}"] = ld.numpy()
    for k, v in losses.items():
        out[f"loss.{k}"] = np.array(v.item(), dtype=np.float64)
    meta = {"config": wmeta["config"], "latent_norm_regularization": repr(lam),
            "description": f"torch_reference --forward {os.path.basename(weights_path)} on {os.path.basename(input_path)}"}
    if "noise" in inp:
        out["input.sample_noise"] = inp["noise"].astype(np.float32)
        out["reverse.x"] = model.reverse(f64("noise"), y)[0].numpy()
        if conditional and "y_null" in inp and float(imeta.get("guidance", "0")) > 0:
            w_cfg = float(imeta["guidance"])
            out["input.y_null"] = inp["y_null"].astype(np.float32)
            out["reverse_cfg.x"] = model.reverse(f64("noise"), torch.cat([y, f64("y_null")]), w_cfg)[0].numpy()
            meta["guidance"] = repr(w_cfg)
    write_safetensors(out_path, out, meta)
    print(f"forward: {weights_path} on {input_path} (B={x.shape[0]}): nll {losses['nll'].item():.6f}, "
          f"total {losses['total'].item():.6f} -> {out_path}")
    return 0

