#!/usr/bin/python3
"""starflow's own PyTorch statement of the STARFlow model, written from shared/spec/STARFLOW.md.

It is the reference side of the CPU benchmarks and is checked against shared/golden first.
Run it with Debian's /usr/bin/python3 (python3-torch 1.13, OpenBLAS):

  torch_reference.py --check-golden /work/shared/golden     # float64 + float32 check, every fixture
  torch_reference.py --bench train  --config A|B [--steps 5] [--threads 2]
  torch_reference.py --bench sample --config A|B [--cfg W] [--steps 2] [--threads 2]
  torch_reference.py --bench ... --serve     # after set-up and warm-up prints "ready", then times one
                                             # run per "run" line on stdin (prints its ms), until EOF
  torch_reference.py --selftest                              # reverse(forward(x)) == x, CFG no-ops
  torch_reference.py --forward W.safetensors --input IN.safetensors --out OUT.safetensors

--forward imports weights exported by `starflow convert` (official names, `config` metadata), runs the
input file's `x` (+ `y`) forward, and `noise` (+ `y_null`, metadata `guidance`) through the sequential
reverse, in float64 from the float32 weights, and writes OUT in the golden-fixture layout
(param.*, input.*, forward.*, loss.*, reverse*.x), so `starflow check-golden OUT` compares the C++ model
with this statement on those weights within the float32 tolerances of shared/golden/README.md.

State-dict names are the official ones (golden README §2.1); the deprecated buffers attn_mask, var and
feat_rope.* are not created and are ignored when loading.
"""
import argparse, ctypes, glob, json, math, os, statistics, struct, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LN_E_MINUS_1 = math.log(math.e - 1.0)      # softplus(a + ln(e-1)) = 1 at a = 0
LATENT_LAMBDA = 1e-4

# ------------------------------------------------------------------------------------------ config
DEFAULTS = dict(in_channels=4, img_size=8, patch_size=1, channels=128, num_blocks=3,
                layers_per_block=[1, 1, 2], head_dim=64, txt_size=0, txt_dim=0, cond_top_only=True,
                soft_clip=4.0, seq_order="L2R", pt_seq_len=None, use_softplus=True,
                use_final_norm=True, sos=True, rope=True)
BENCH = {"A": dict(channels=256, layers_per_block=[2, 2, 2, 2], batch=32),
         "B": dict(channels=512, layers_per_block=[4, 4, 4, 4], batch=16)}


def make_config(d):
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in d.items() if k in DEFAULTS})
    for key in ("sos", "rope", "use_softplus", "use_final_norm"):
        if not cfg[key]:
            raise SystemExit(f"config: only the STARFlow setting {key}=True is implemented")
    if cfg["txt_size"] > 0 and not cfg["cond_top_only"]:
        raise SystemExit("config: text conditioning is implemented for cond_top_only=True only")
    if isinstance(cfg["layers_per_block"], int):
        cfg["layers_per_block"] = [cfg["layers_per_block"]] * cfg["num_blocks"]
    assert len(cfg["layers_per_block"]) == cfg["num_blocks"]
    return cfg


def bench_config(name):   # latents 4x8x8, patch 1, head_dim 64, 8x100 text prefix in the top block, L2R
    b = BENCH[name]
    return make_config(dict(channels=b["channels"], num_blocks=4, layers_per_block=b["layers_per_block"],
                            txt_size=8, txt_dim=100)), b["batch"]

# ------------------------------------------------------------------------------------ safetensors
NP_DTYPES = {"F32": np.float32, "F64": np.float64}


def read_safetensors(path):
    """Returns ({name: np.ndarray}, metadata dict). Only F32/F64, little-endian."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n).decode("utf-8"))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        dt = np.dtype(NP_DTYPES[e["dtype"]]).newbyteorder("<")
        tensors[name] = np.frombuffer(data[b:end], dtype=dt).reshape(e["shape"]).astype(dt.type)
    return tensors, meta



def write_safetensors(path, tensors, metadata):
    """tensors: {name: np.ndarray (float32 or float64)}, in order; written to a temporary name, renamed."""
    codes = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64"}
    header, blobs, at = {"__metadata__": metadata}, [], 0
    for name, a in tensors.items():
        blob = a.astype(a.dtype.newbyteorder("<")).tobytes(order="C")   # keeps 0-d arrays 0-d
        header[name] = {"dtype": codes[np.dtype(a.dtype.type)], "shape": list(a.shape), "data_offsets": [at, at + len(blob)]}
        blobs.append(blob)
        at += len(blob)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    os.replace(tmp, path)

# ------------------------------------------------------------------------------------------- RoPE
def inv_freq(dim):
    """Official float32 inverse frequencies 1/10000^(2i/dim), i < dim/2, computed in float32."""
    return 1.0 / (10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))


def rope_angles(cfg, n_text):
    """Angle table (n_text + T, dh) in float64 for a block whose sequence is [text(n_text); image(T)].
    Columns: [r*w_i, c*w_i, e*nu_j] (24+8 split of dh/2 slots when txt_size > 0), each duplicated."""
    h = w = cfg["img_size"] // cfg["patch_size"]
    P = cfg["pt_seq_len"] or h
    dh, L = cfg["head_dim"], cfg["txt_size"]
    t = torch.arange(h * w, dtype=torch.float64)
    s = P / math.sqrt(h * w)
    r, c = torch.div(t, w, rounding_mode="floor") * s, torch.remainder(t, w) * s
    if L > 0:
        ws, nu = inv_freq(dh // 2 - 8).double(), inv_freq(16).double()   # 10000^(-j/8), j < 8
        img = torch.cat([r[:, None] * ws, c[:, None] * ws, torch.zeros(h * w, 8, dtype=torch.float64)], 1)
        e = (torch.arange(n_text).float() / L * P).double()             # float32 text positions
        txt = torch.cat([torch.zeros(n_text, 2 * len(ws), dtype=torch.float64), e[:, None] * nu], 1)
        ang = torch.cat([txt, img], 0)
    else:
        ws = inv_freq(dh // 2).double()
        ang = torch.cat([r[:, None] * ws, c[:, None] * ws], 1)
    assert ang.shape[1] * 2 == dh, "head_dim incompatible with the RoPE layout (spec §13)"
    return ang.repeat_interleave(2, dim=1)


def apply_rope(x, cos, sin):
    """Adjacent-pair rotation: x'[2m] = x[2m]cos - x[2m+1]sin, x'[2m+1] = x[2m+1]cos + x[2m]sin."""
    x2 = x.unflatten(-1, (-1, 2))
    rot = torch.stack((-x2[..., 1], x2[..., 0]), dim=-1).flatten(-2)
    return x * cos + rot * sin


_MASKS = {}


def causal_mask(n, total, dtype):
    """Additive mask for n queries that are the last n of `total` keys (bottom-right aligned)."""
    key = (n, total, dtype)
    if key not in _MASKS:
        _MASKS[key] = torch.full((n, total), float("-inf"), dtype=dtype).triu(total - n + 1)
    return _MASKS[key]

# ---------------------------------------------------------------------------------------- modules
class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.zeros(dim)), eps   # effective gain 1 + weight

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * (1 + self.weight)


class Attention(nn.Module):
    def __init__(self, C, dh):
        super().__init__()
        self.norm, self.qkv, self.proj = nn.LayerNorm(C, eps=1e-5), nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.nh, self.dh, self.scale = C // dh, dh, (dh ** -0.25) ** 2

    def forward(self, x, cos, sin, cache=None, start=0):
        """x: (B, n, C) at sequence positions start..start+n-1. With a cache (K, V) of shape
        (B, nH, S, dh) the rotated keys and values are written at those positions and the queries
        attend to positions 0..start+n-1; without one the n positions are the whole sequence."""
        B, n, C = x.shape
        q, k, v = self.qkv(self.norm(x)).view(B, n, 3, self.nh, self.dh).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            cache[0][:, :, start:start + n], cache[1][:, :, start:start + n] = k, v
            k, v = cache[0][:, :, :start + n], cache[1][:, :, :start + n]
        att = (q @ k.transpose(-2, -1)) * self.scale
        if n > 1:
            att = att + causal_mask(n, k.shape[2], att.dtype)
        o = att.softmax(-1) @ v
        return self.proj(o.transpose(1, 2).reshape(B, n, C))


class MLP(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.norm = nn.LayerNorm(C, eps=1e-5)
        self.main = nn.Sequential(nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C))  # exact erf GELU

    def forward(self, x):
        return self.main(self.norm(x))


class AttnBlock(nn.Module):
    def __init__(self, C, dh):
        super().__init__()
        self.attention, self.mlp = Attention(C, dh), MLP(C)

    def forward(self, x, cos, sin, cache=None, start=0):
        x = x + self.attention(x, cos, sin, cache, start)
        return x + self.mlp(x)


def cfg_mix(sigma, mu, w):
    """STARFlow guidance (spec §5.1) on [cond; uncond] halves; both halves get the guided values."""
    sc, su = sigma.chunk(2)
    mc, mu_u = mu.chunk(2)
    s = torch.clamp(sc / su, max=1.0) ** 2
    den = 1 + w - w * s
    sg, mg = sc / torch.sqrt(den), ((1 + w) * mc - w * s * mu_u) / den
    return torch.cat([sg, sg]), torch.cat([mg, mg])


class MetaBlock(nn.Module):
    """One autoregressive affine flow block: permute -> causal transformer -> affine -> un-permute."""

    def __init__(self, cfg, layers, flip, cond):
        super().__init__()
        p, C = cfg["patch_size"], cfg["channels"]
        D = p * p * cfg["in_channels"]
        self.D, self.flip, self.cond, self.clip = D, flip, cond, cfg["soft_clip"]
        self.L = cfg["txt_size"] if cond else 0
        self.sos_embed = nn.Parameter(torch.randn(1, 1, D))
        self.proj_in = nn.Linear(D, C)
        if cond:
            self.proj_txt = nn.Linear(cfg["txt_dim"], C)
        self.attn_blocks = nn.ModuleList(AttnBlock(C, cfg["head_dim"]) for _ in range(layers))
        self.final_norm = RMSNorm(C)
        self.proj_out = nn.Linear(C, 2 * D)
        nn.init.zeros_(self.proj_out.weight)          # bias keeps its default init (spec §11.11)
        self.angles, self._rope = rope_angles(cfg, self.L), {}   # plain attributes, not buffers

    def rope(self, dtype):
        if dtype not in self._rope:
            a = self.angles.to(dtype)
            self._rope[dtype] = (a.cos(), a.sin())
        return self._rope[dtype]

    def permute(self, v):                               # Flip is its own inverse
        return v.flip(1) if self.flip else v

    def head(self, h):
        """Image hidden states -> (sigma, mu), each (B, n, D)."""
        o = self.proj_out(self.final_norm(h))
        if self.clip > 0:
            o = self.clip * torch.tanh(o / self.clip)
        a, mu = o[..., :self.D], o[..., self.D:]
        return F.softplus(a + LN_E_MINUS_1), mu

    def forward(self, u, y=None):
        """u: (B, h, w, D) raster -> (z in raster order, logdet (B, T, D) in PERMUTED order)."""
        B, hh, ww, D = u.shape
        v = self.permute(u.reshape(B, hh * ww, D))
        x = self.proj_in(torch.cat([self.sos_embed.expand(B, 1, D), v[:, :-1]], 1))
        if self.cond:
            x = torch.cat([self.proj_txt(y), x], 1)
        cos, sin = self.rope(x.dtype)
        for layer in self.attn_blocks:
            x = layer(x, cos, sin)
        sigma, mu = self.head(x[:, self.L:])
        z = (v - mu) / sigma
        return self.permute(z).reshape(B, hh, ww, D), -torch.log(sigma)

    def reverse(self, z, y=None, guidance=0.0):
        """Sequential KV-cached inverse (spec §2.5). With guidance > 0 (conditioned block only) y holds
        [y_cond; y_null] (2B rows) and both halves run in one batched pass."""
        B, hh, ww, D = z.shape
        T = hh * ww
        v = self.permute(z.reshape(B, T, D))
        guided = self.cond and guidance > 0
        if guided:
            v = torch.cat([v, v])
        Bq, first = v.shape[0], self.attn_blocks[0].attention
        cos, sin = self.rope(v.dtype)
        caches = [(v.new_zeros(Bq, first.nh, self.L + T, first.dh),
                   v.new_zeros(Bq, first.nh, self.L + T, first.dh)) for _ in self.attn_blocks]
        if self.cond:                                    # text prefix: once, all layers
            x = self.proj_txt(y)
            for layer, cache in zip(self.attn_blocks, caches):
                x = layer(x, cos[:self.L], sin[:self.L], cache, 0)
        out, inp = torch.empty_like(v), self.sos_embed.expand(Bq, 1, D)
        for t in range(T):
            pos = self.L + t
            x = self.proj_in(inp)
            for layer, cache in zip(self.attn_blocks, caches):
                x = layer(x, cos[pos:pos + 1], sin[pos:pos + 1], cache, pos)
            sigma, mu = self.head(x)
            if guided:
                sigma, mu = cfg_mix(sigma, mu, guidance)
            inp = v[:, t:t + 1] * sigma + mu
            out[:, t:t + 1] = inp
        return self.permute(out[:B]).reshape(B, hh, ww, D)


class Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg, K = cfg, cfg["num_blocks"]
        l2r = cfg["seq_order"] == "L2R"
        # L2R: block k is Flip iff k is even (top = [Id, Flip][K % 2]); R2L: Flip iff k is odd.
        self.blocks = nn.ModuleList(
            MetaBlock(cfg, n, flip=(k + l2r) % 2 == 1, cond=cfg["txt_size"] > 0 and k == K - 1)
            for k, n in enumerate(cfg["layers_per_block"]))

    def patchify(self, x):          # (B, C, H, W) -> (B, h, w, p*p*C), feature (i*p + j)*C + c
        B, C, H, W = x.shape
        p = self.cfg["patch_size"]
        return x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1).reshape(
            B, H // p, W // p, p * p * C)

    def unpatchify(self, u):
        B, h, w, _ = u.shape
        p, C = self.cfg["patch_size"], self.cfg["in_channels"]
        return u.reshape(B, h, w, p, p, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, h * p, w * p)

    def forward(self, x, y=None):
        """Returns z (image-shaped), per-block logdets (B, T, D, permuted order), outputs[0..K]."""
        u = self.patchify(x)
        outputs, logdets = [u], []
        for blk in self.blocks:
            u, ld = blk(u, y if blk.cond else None)
            outputs.append(u)
            logdets.append(ld)
        return self.unpatchify(u), logdets, outputs

    @torch.no_grad()
    def reverse(self, noise, y=None, guidance=0.0):
        """noise (B, C, H, W) -> (x, sequence [noise, after top block, ..., after block 0]).
        CFG: y = cat([y, y_null]) and guidance > 0; shallow blocks use the conditional half only."""
        u, seq = self.patchify(noise), [noise]
        for blk in reversed(self.blocks):
            yb = None if not blk.cond else y
            u = blk.reverse(u, yb, guidance)
            seq.append(self.unpatchify(u))
        return seq[-1], seq


def loss_fn(z, logdets, outputs, lam=LATENT_LAMBDA):
    """Spec §4.1 / golden README §2.3: nll = 0.5 mean(z^2) - sum_k mean(logdet_k);
    latent_norm = sum_{k<K} mean(outputs[k]^2) (includes the input, excludes z)."""
    loss_z = 0.5 * z.pow(2).mean()
    loss_logdet = -sum(ld.mean() for ld in logdets)
    nll = loss_z + loss_logdet
    latent = sum(o.pow(2).mean() for o in outputs[:-1])
    return dict(nll=nll, z=loss_z, logdet=loss_logdet, latent_norm=latent, total=nll + lam * latent)


def build_model(cfg, seed=0, perturb=0.0):
    torch.manual_seed(seed)
    m = Model(cfg)
    if perturb:
        with torch.no_grad():
            for p in m.parameters():
                p.add_(perturb * torch.randn_like(p))
    return m

# ---------------------------------------------------------------------------------- golden check
F32_TOL = {  # group -> (threshold, 'rel' = max|d|/max|ref| or 'abs' = max|d|), golden README §4
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


def denoise(model, x, y, sigma_n):
    """Score step x - sigma_n^2 * numel * d(batch-mean nll)/dx (equal to the per-sample official step)."""
    x = x.detach().clone().requires_grad_(True)
    z, lds, outs = model(x, y)
    g, = torch.autograd.grad(loss_fn(z, lds, outs)["nll"], x)
    return (x - sigma_n ** 2 * x.numel() * g).detach()


def run_case(t, meta, cfg, dtype):
    """Runs everything on one fixture in `dtype`; returns {group: [(name, mine, ref)]}."""
    model = Model(cfg)
    params = {k[6:]: torch.from_numpy(v.copy()) for k, v in t.items() if k.startswith("param.")
              and not (k == "param.var" or k.endswith(".attn_mask") or k.startswith("param.feat_rope"))}
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
    # used full-precision ones); float32 is fed the fixture's grad.* (README §4).
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
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise SystemExit(f"no *.safetensors in {folder}")
    ok = True
    for path in files:
        t, meta = read_safetensors(path)
        cfg = make_config(json.loads(meta["config"]))
        r64 = run_case(t, meta, cfg, torch.float64)
        r32 = run_case(t, meta, cfg, torch.float32)
        print(f"\n== {os.path.basename(path)}  (f64: max|d|/max|ref| raw; excess over the F32 "
              f"storage rounding, limit {F64_TOL:g}; f32: README section 4 limits)")
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
    print("\ncheck-golden:", "PASS" if ok else "FAIL")
    return 0 if ok else 1

# --------------------------------------------------------------------------- exported weights, forward
def forward_exported(weights_path, input_path, out_path):
    """Imports `starflow convert` output into this statement of the model and writes its results on the
    input file's tensors as a golden-style fixture (see the module docstring)."""
    w, wmeta = read_safetensors(weights_path)
    if "config" not in wmeta:
        raise SystemExit(f"{weights_path}: no 'config' metadata (not a `starflow convert` export)")
    cfg = make_config(json.loads(wmeta["config"]))
    model = Model(cfg)
    model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in w.items()}, strict=True)
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
            "description": f"torch_reference.py --forward {os.path.basename(weights_path)} on {os.path.basename(input_path)}"}
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

# ------------------------------------------------------------------------------------- benchmarks
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


def bench(args):
    torch.set_num_threads(args.threads)
    busy = busy_cores()     # OpenMP timings collapse (up to 20x) when other processes use the cores
    if busy > 0.3:
        print(f"torch_reference: WARNING: other processes keep {busy:.1f} cores busy; with "
              f"{args.threads} OpenMP threads the timings are unreliable", file=sys.stderr)
    blas, gflops = blas_check()
    cfg, batch = bench_config(args.config)
    L, E = cfg["txt_size"], cfg["txt_dim"]
    model = build_model(cfg, seed=0)
    g = torch.Generator().manual_seed(1234)
    res = dict(work=args.bench, config=args.config)
    if args.bench == "train":
        x = torch.randn(batch, 4, 8, 8, generator=g)
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
        noise = torch.randn(batch, 4, 8, 8, generator=g)
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

# --------------------------------------------------------------------------------------- selftest
def selftest():
    cfg = make_config(dict(channels=64, head_dim=32, txt_size=3, txt_dim=5, num_blocks=3,
                           layers_per_block=[1, 1, 2], seq_order="L2R"))
    model = build_model(cfg, seed=7, perturb=0.05).double()
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    ok = True

    def report(name, err, tol):
        nonlocal ok
        ok &= err <= tol
        print(f"{name:<52}{err:10.2e}  (tol {tol:.0e})  {'ok' if err <= tol else 'FAIL'}")
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        m, xd, yd = model.to(dtype), x.to(dtype), y.to(dtype)
        with torch.no_grad():
            z, _, outs = m(xd, yd)
            x0, _ = m.reverse(z, yd)
            report(f"{dtype}: max|reverse(forward(x)) - x|", (x0 - xd).abs().max().item(), tol)
            for k, blk in enumerate(m.blocks):
                ub = blk.reverse(outs[k + 1], yd if blk.cond else None)
                report(f"{dtype}: block {k} max|reverse(forward(u)) - u|", (ub - outs[k]).abs().max().item(), tol)
            xg, _ = m.reverse(z, torch.cat([yd, yd]), 3.0)
            report(f"{dtype}: CFG with y_null == y (w=3) vs unguided", (xg - x0).abs().max().item(), tol)
            xw, _ = m.reverse(z, torch.cat([yd, torch.zeros_like(yd)]), 1e-30)
            report(f"{dtype}: CFG w=1e-30 vs unguided", (xw - x0).abs().max().item(), tol)
    print("selftest:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check-golden", metavar="DIR")
    ap.add_argument("--bench", choices=["train", "sample"])
    ap.add_argument("--config", choices=["A", "B"], default="A")
    ap.add_argument("--cfg", type=float, default=0.0, help="guidance weight for --bench sample")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (train 5, sample 2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--serve", action="store_true", help="--bench: time one run per 'run' line on stdin")
    ap.add_argument("--batch", type=int, default=None, help="images for --bench sample (default 16)")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--forward", metavar="WEIGHTS", help="exported weights (starflow convert) to import and run")
    ap.add_argument("--input", metavar="FILE", help="--forward: safetensors with x [, y, noise, y_null]")
    ap.add_argument("--out", metavar="FILE", help="--forward: where the golden-style results go")
    a = ap.parse_args()
    if a.check_golden:
        return check_golden(a.check_golden)
    if a.bench:
        return bench(a)
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
