"""The project's PyTorch statement of the STARFlow model, written from the STARFlow spec: config parsing,
RoPE, the layers, the flow (forward, KV-cached sequential reverse with guidance), the loss and the denoising
step. Everything else in this folder (golden check, --forward, benchmarks, selftest) runs this model.

State-dict names are the official ones (tests/golden/data/README.md); the deprecated buffers attn_mask, var and
feat_rope.* are not created (golden.run_case drops them when loading a fixture).
"""
import math

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


# The official optional switches (their default values) that this statement does not implement.
UNIMPLEMENTED = dict(use_swiglu=False, use_qk_norm=False, use_post_norm=False, norm_type="layer_norm",
                     num_kv_heads=None, use_bias=True, hf_style_rope=False, top_block_channels=None,
                     learnable_self_denoiser=False, conditional_denoiser=False)


class UnsupportedConfig(SystemExit):
    """A config that asks for a setting this statement does not implement."""


def make_config(d):
    """Official config dict (fixture metadata, export metadata, --model-config) -> the keys this statement
    reads. Unknown keys are ignored; settings it does not implement stop the program (UnsupportedConfig)
    rather than silently run a different model."""
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in d.items() if k in DEFAULTS})
    on = [f"{k}={d[k]!r}" for k, off in UNIMPLEMENTED.items() if d.get(k, off) != off]
    if d.get("num_heads") not in (None, cfg["channels"] // cfg["head_dim"]):
        on.append(f"num_heads={d['num_heads']!r}")
    if on:
        raise UnsupportedConfig("config: not implemented in this statement: " + ", ".join(on))
    for key in ("sos", "rope", "use_softplus", "use_final_norm"):
        if not cfg[key]:
            raise UnsupportedConfig(f"config: only the STARFlow setting {key}=True is implemented")
    if cfg["txt_size"] > 0 and not cfg["cond_top_only"]:
        raise UnsupportedConfig("config: text conditioning is implemented for cond_top_only=True only")
    if isinstance(cfg["layers_per_block"], int):
        cfg["layers_per_block"] = [cfg["layers_per_block"]] * cfg["num_blocks"]
    assert len(cfg["layers_per_block"]) == cfg["num_blocks"]
    return cfg


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
    """Spec §4.1, the fixtures' loss: nll = 0.5 mean(z^2) - sum_k mean(logdet_k);
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


def denoise(model, x, y, sigma_n):
    """Score step x - sigma_n^2 * numel * d(batch-mean nll)/dx (equal to the per-sample official step)."""
    x = x.detach().clone().requires_grad_(True)
    z, lds, outs = model(x, y)
    g, = torch.autograd.grad(loss_fn(z, lds, outs)["nll"], x)
    return (x - sigma_n ** 2 * x.numel() * g).detach()

