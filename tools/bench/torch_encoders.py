# The reference side of `starflow bench encoders`: the Flan-T5 encoder and the SD-VAE (diffusers AutoencoderKL)
# written out in plain PyTorch (Debian's python3-torch has neither transformers nor diffusers), with random
# weights, timed the way the official pipeline runs them: T5 on captions padded to the full text length with an
# attention mask, the VAE's encode (posterior moments) and decode, all under torch.inference_mode(). Called as
#   /usr/bin/python3 tools/bench/torch_encoders.py 'JSON'
# with JSON {"threads", "runs", "t5": {"config", "captions", "length"} | null, "vae": {"config", "size", "batch"} |
# null}; prints "t5 SECONDS", "vae_encode SECONDS", "vae_decode SECONDS" (medians of `runs` timed calls after an
# untimed one) and "peak_rss_mb MB" (the process's peak resident memory). The modules carry the upstream
# state_dict names, and `torch_encoders.py --check GOLDEN_DIR` holds the statement to the upstream fixtures.
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def median_seconds(call, runs):
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


# ---- T5 encoder (transformers' T5EncoderModel, encoder only) ----

def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class T5LayerNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))


def relative_bucket(relative_position, num_buckets, max_distance):
    num_buckets //= 2
    buckets = (relative_position > 0).to(torch.long) * num_buckets
    n = torch.abs(relative_position)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    large = max_exact + (torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) *
                         (num_buckets - max_exact)).to(torch.long)
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(is_small, n, large)


class T5Attention(nn.Module):
    def __init__(self, c, has_bias):
        super().__init__()
        d, inner = c["d_model"], c["num_heads"] * c["d_kv"]
        self.h, self.dkv = c["num_heads"], c["d_kv"]
        self.q, self.k, self.v = (nn.Linear(d, inner, bias=False) for _ in range(3))
        self.o = nn.Linear(inner, d, bias=False)
        if has_bias:
            self.relative_attention_bias = nn.Embedding(c["relative_attention_num_buckets"], self.h)

    def forward(self, x, bias):
        B, S, _ = x.shape
        q, k, v = (f(x).view(B, S, self.h, self.dkv).transpose(1, 2) for f in (self.q, self.k, self.v))
        scores = torch.matmul(q, k.transpose(3, 2)) + bias  # no 1/sqrt(d_kv): folded into q's initialisation
        attn = torch.matmul(F.softmax(scores.float(), dim=-1).type_as(scores), v)
        return self.o(attn.transpose(1, 2).reshape(B, S, -1))


class T5Layer(nn.Module):  # transformers' T5LayerSelfAttention / T5LayerFF: a pre-norm and a residual
    def __init__(self, c, inner):
        super().__init__()
        self.layer_norm = T5LayerNorm(c["d_model"], c["layer_norm_epsilon"])
        if isinstance(inner, T5Attention):
            self.SelfAttention = inner
        else:
            self.DenseReluDense = inner


class T5GatedFF(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wi_0 = nn.Linear(c["d_model"], c["d_ff"], bias=False)
        self.wi_1 = nn.Linear(c["d_model"], c["d_ff"], bias=False)
        self.wo = nn.Linear(c["d_ff"], c["d_model"], bias=False)

    def forward(self, x):
        return self.wo(gelu_new(self.wi_0(x)) * self.wi_1(x))


class T5Block(nn.Module):
    def __init__(self, c, has_bias):
        super().__init__()
        self.layer = nn.ModuleList([T5Layer(c, T5Attention(c, has_bias)), T5Layer(c, T5GatedFF(c))])

    def forward(self, h, bias):
        h = h + self.layer[0].SelfAttention(self.layer[0].layer_norm(h), bias)
        return h + self.layer[1].DenseReluDense(self.layer[1].layer_norm(h))


class T5Stack(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["d_model"])
        self.block = nn.ModuleList(T5Block(c, i == 0) for i in range(c["num_layers"]))
        self.final_layer_norm = T5LayerNorm(c["d_model"], c["layer_norm_epsilon"])


class T5Encoder(nn.Module):  # parameter names as T5EncoderModel's state_dict (encoder.*)
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.encoder = T5Stack(c)

    def forward(self, ids, mask):
        S = ids.shape[1]
        pos = torch.arange(S)
        buckets = relative_bucket(pos[None, :] - pos[:, None], self.c["relative_attention_num_buckets"],
                                  self.c["relative_attention_max_distance"])
        bias = self.encoder.block[0].layer[0].SelfAttention.relative_attention_bias(buckets).permute(2, 0, 1)[None]
        bias = bias + (1.0 - mask[:, None, None, :].to(bias.dtype)) * torch.finfo(torch.float32).min
        h = self.encoder.embed_tokens(ids)
        for block in self.encoder.block:
            h = block(h, bias)
        return self.encoder.final_layer_norm(h) * mask[..., None].to(h.dtype)  # STARFlow's mask multiplication


# ---- SD-VAE (diffusers AutoencoderKL; parameter names as its state_dict) ----

class Resnet(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.conv_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if hasattr(self, "conv_shortcut") else x) + h


class Attention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.to_q, self.to_k, self.to_v = (nn.Linear(c, c) for _ in range(3))
        self.to_out = nn.ModuleList([nn.Linear(c, c)])

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.group_norm(x).view(B, C, H * W).transpose(1, 2)
        q, k, v = self.to_q(h), self.to_k(h), self.to_v(h)
        probs = torch.softmax(torch.bmm(q, k.transpose(1, 2)) / math.sqrt(C), dim=-1)
        return x + self.to_out[0](torch.bmm(probs, v)).transpose(1, 2).reshape(B, C, H, W)


class MidBlock(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.attentions = nn.ModuleList([Attention(c, groups)])
        self.resnets = nn.ModuleList([Resnet(c, c, groups), Resnet(c, c, groups)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Sampler(nn.Module):  # Downsample2D (pad right/bottom, stride 2) or Upsample2D (nearest 2x), then a 3x3 conv
    def __init__(self, c, down):
        super().__init__()
        self.down = down
        self.conv = nn.Conv2d(c, c, 3, stride=2) if down else nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)) if self.down else F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Block(nn.Module):
    def __init__(self, cin, cout, layers, groups, sampler):
        super().__init__()
        self.resnets = nn.ModuleList(Resnet(cin if j == 0 else cout, cout, groups) for j in range(layers))
        if sampler is not None:
            setattr(self, "downsamplers" if sampler else "upsamplers", nn.ModuleList([Sampler(cout, sampler)]))

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        for name in ("downsamplers", "upsamplers"):
            if hasattr(self, name):
                x = getattr(self, name)[0](x)
        return x


class Coder(nn.Module):
    def __init__(self, c, encoder):
        super().__init__()
        widths, g, n = c["block_out_channels"], c["norm_num_groups"], c["layers_per_block"]
        last = len(widths) - 1
        if encoder:
            self.conv_in = nn.Conv2d(c["in_channels"], widths[0], 3, padding=1)
            self.down_blocks = nn.ModuleList(
                Block(widths[max(i - 1, 0)], w, n, g, True if i < last else None) for i, w in enumerate(widths))
            self.mid_block = MidBlock(widths[-1], g)
            self.conv_norm_out = nn.GroupNorm(g, widths[-1], eps=1e-6)
            self.conv_out = nn.Conv2d(widths[-1], 2 * c["latent_channels"], 3, padding=1)
        else:
            rev = list(reversed(widths))
            self.conv_in = nn.Conv2d(c["latent_channels"], widths[-1], 3, padding=1)
            self.mid_block = MidBlock(widths[-1], g)
            self.up_blocks = nn.ModuleList(
                Block(rev[max(i - 1, 0)], w, n + 1, g, False if i < last else None) for i, w in enumerate(rev))
            self.conv_norm_out = nn.GroupNorm(g, widths[0], eps=1e-6)
            self.conv_out = nn.Conv2d(widths[0], c["out_channels"], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        if hasattr(self, "down_blocks"):
            for block in self.down_blocks:
                h = block(h)
            h = self.mid_block(h)
        else:
            h = self.mid_block(h)
            for block in self.up_blocks:
                h = block(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class Vae(nn.Module):
    def __init__(self, c):
        super().__init__()
        L = c["latent_channels"]
        self.encoder = Coder(c, True)
        self.decoder = Coder(c, False)
        self.quant_conv = nn.Conv2d(2 * L, 2 * L, 1)
        self.post_quant_conv = nn.Conv2d(L, L, 1)

    def encode(self, x):
        mean, logvar = torch.chunk(self.quant_conv(self.encoder(x)), 2, dim=1)
        return mean, torch.clamp(logvar, -30.0, 20.0)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


def randomise(module):
    # Weights of a realistic scale (1/sqrt(fan-in)) so no value runs into denormals or overflow.
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:
                fan_in = 1 if "embed_tokens" in name else p[0].numel()
                p.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))


def check(golden_dir):
    """The statement against the upstream fixtures (transformers and diffusers in float64): both models load the
    fixtures' state_dicts strictly, under the upstream names, and must reproduce their outputs, run in float64, to
    the fixtures' float32 storage."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch_reference"))
    from safetensors_io import read_safetensors
    torch.set_default_dtype(torch.float64)
    worst = 0.0

    def compare(name, ours, ref):
        nonlocal worst
        ref = torch.from_numpy(ref).double()
        rel = float((ours - ref).abs().max() / ref.abs().max())
        worst = max(worst, rel)
        print(f"{name}: max |d| / max |ref| = {rel:.2e}")

    def params(tensors):
        return {k[len("param."):]: torch.from_numpy(v).double() for k, v in tensors.items() if k.startswith("param.")}

    with torch.inference_mode():
        tensors, meta = read_safetensors(os.path.join(golden_dir, "t5_tiny_encoder.safetensors"))
        model = T5Encoder(json.loads(meta["config"]))
        state = params(tensors)
        state.setdefault("encoder.embed_tokens.weight", state.get("shared.weight"))
        state.pop("shared.weight", None)
        model.load_state_dict(state, strict=True)
        ids = torch.from_numpy(tensors["input.input_ids"])
        mask = torch.from_numpy(tensors["input.attention_mask"])
        compare("t5 out.masked_hidden_state", model(ids, mask), tensors["out.masked_hidden_state"])
        tensors, meta = read_safetensors(os.path.join(golden_dir, "sd_vae_tiny.safetensors"))
        vae = Vae(json.loads(meta["config"]))
        vae.load_state_dict(params(tensors), strict=True)
        mean, logvar = vae.encode(torch.from_numpy(tensors["input.x"]).double())
        compare("vae enc.mean", mean, tensors["enc.mean"])
        compare("vae enc.logvar", logvar, tensors["enc.logvar"])
        compare("vae dec.sample", vae.decode(torch.from_numpy(tensors["input.z"]).double()), tensors["dec.sample"])
    # The fixtures store float32 values of float64 results: agreement is bounded by that rounding.
    print("PASS" if worst < 1e-6 else "FAIL")
    return 0 if worst < 1e-6 else 1


def main():
    if sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    runs = spec["runs"]
    with torch.inference_mode():
        if spec.get("t5"):
            t5 = spec["t5"]
            model = T5Encoder(t5["config"]).eval()
            randomise(model)
            n, length = t5["captions"], t5["length"]
            ids = torch.randint(2, t5["config"]["vocab_size"], (n, length))
            mask = torch.zeros(n, length, dtype=torch.long)
            for row, valid in enumerate(t5["lengths"]):
                mask[row, :valid] = 1
            ids = ids * mask  # padding id 0, as the tokenizer pads
            print(f"t5 {median_seconds(lambda: model(ids, mask), runs):.6f}", flush=True)
            del model
        if spec.get("vae"):
            vae = spec["vae"]
            model = Vae(vae["config"]).eval()
            randomise(model)
            size, batch = vae["size"], vae["batch"]
            down = 2 ** (len(vae["config"]["block_out_channels"]) - 1)
            x = torch.rand(batch, vae["config"]["in_channels"], size, size) * 2 - 1
            z = torch.randn(batch, vae["config"]["latent_channels"], size // down, size // down)
            print(f"vae_encode {median_seconds(lambda: model.encode(x), runs):.6f}", flush=True)
            print(f"vae_decode {median_seconds(lambda: model.decode(z), runs):.6f}", flush=True)
    print(f"peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}", flush=True)


if __name__ == "__main__":
    main()
