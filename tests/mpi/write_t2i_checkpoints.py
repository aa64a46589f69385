#!/usr/bin/env python3
"""Writes the inputs of tests/mpi/test_text_to_image.sh from the golden fixtures, in the on-disk layouts a user
downloads: an SD-VAE diffusers folder (float16), a sharded T5 encoder folder (bfloat16 + float32 shards with
model.safetensors.index.json and spiece.model), and a small captioned image folder (non-square RGB PNGs).

Usage: write_t2i_checkpoints.py OUTDIR. Needs python3 and numpy only (the safetensors and PNG files are written
by hand)."""
import json
import os
import shutil
import struct
import sys
import zlib

import numpy as np

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "data")

# safetensors dtype name <-> numpy dtype (BF16 has no numpy type: it is handled as uint16 bits).
DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "U8": np.uint8}


def read_safetensors(path):
    """Returns (tensors as float32/int arrays by name, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        tensors[name] = np.frombuffer(data[base + begin:base + end], dtype=np.dtype(dtype).newbyteorder("<")) \
            .reshape(info["shape"])
    return tensors, metadata


def to_bf16_bits(x):
    """float32 -> the top 16 bits after round-to-nearest-even (NaNs kept quiet)."""
    bits = np.ascontiguousarray(x, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    nan = np.isnan(np.asarray(x, dtype=np.float32))
    rounded[nan] = (bits[nan] >> 16) | 0x40
    return rounded.astype("<u2")


def encode(array, dtype):
    """(raw little-endian bytes) of an array stored as `dtype`."""
    a = np.asarray(array)
    if dtype == "BF16":
        return to_bf16_bits(a.astype(np.float32)).tobytes()
    return np.ascontiguousarray(a.astype(np.dtype(DTYPES[dtype]).newbyteorder("<"))).tobytes()


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, array, dtype). Returns the size of the tensor data in bytes."""
    header, blobs, offset = {}, [], 0
    for name, array, dtype in tensors:
        raw = encode(array, dtype)
        header[name] = {"dtype": dtype, "shape": list(np.shape(array)), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = dict(metadata or {})
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    return offset


def params(tensors):
    return [(name[len("param."):], value) for name, value in tensors.items() if name.startswith("param.")]


def write_vae(out):
    tensors, meta = read_safetensors(os.path.join(GOLDEN, "sd_vae_tiny.safetensors"))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        f.write(meta["config"])
    entries = [(name, value, "F16") for name, value in params(tensors)]
    assert entries, "no param.* tensors in sd_vae_tiny.safetensors"
    write_safetensors(os.path.join(out, "diffusion_pytorch_model.safetensors"), entries, {"format": "pt"})
    return len(entries)


def write_t5(out):
    tensors, meta = read_safetensors(os.path.join(GOLDEN, "t5_tiny_encoder.safetensors"))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        f.write(meta["config"])
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    shards = ([], [])
    for name, value in params(tensors):
        if name == "encoder.embed_tokens.weight":
            continue  # the loader falls back to shared.weight, as transformers' own files need
        first = name == "shared.weight" or name.startswith("encoder.block.0.")
        shards[0 if first else 1].append((name, value, "BF16" if first else "F32"))
    assert shards[0] and shards[1], "the T5 fixture's parameters do not split into two shards"
    total = sum(write_safetensors(os.path.join(out, f), s, {"format": "pt"}) for f, s in zip(files, shards))
    index = {"metadata": {"total_size": total},
             "weight_map": {name: f for f, s in zip(files, shards) for name, _, _ in s}}
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
    shutil.copyfile(os.path.join(GOLDEN, "t5_tiny_spiece.model"), os.path.join(out, "spiece.model"))
    return sum(len(s) for s in shards)


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def write_png(path, rgb):
    """rgb: uint8 [H, W, 3]; 8-bit truecolour, no interlace, filter byte 0 on every row."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        f.write(png_chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(png_chunk(b"IEND", b""))


COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 180, 60), "yellow": (240, 220, 40),
           "purple": (140, 50, 170), "orange": (250, 140, 20), "white": (245, 245, 245), "black": (15, 15, 15)}
SHAPES = ["square", "circle", "triangle", "stripe"]
EXTRAS = ["", "small", "in the middle", "drawn with a thick brush"]


def draw(shape, fg, bg, size, width=20, height=24):
    img = np.empty((height, width, 3), np.uint8)
    img[:, :] = bg
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx, r = height / 2, width / 2, size
    if shape == "square":
        mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
    elif shape == "circle":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    elif shape == "triangle":
        mask = (yy >= cy - r) & (yy <= cy + r) & (abs(xx - cx) <= (yy - (cy - r)) / 2)
    else:
        mask = abs(xx - cx) <= r / 3
    img[mask] = fg
    return img


def write_images(out):
    images = os.path.join(out, "images")
    os.makedirs(images, exist_ok=True)
    names = list(COLOURS)
    lines = []
    for i in range(24):
        fg, bg = names[i % len(names)], names[(i * 3 + 1) % len(names)]
        if bg == fg:
            bg = names[(i + 4) % len(names)]
        shape, size = SHAPES[i % len(SHAPES)], 3 + i % 5
        file = "img_%02d.png" % i
        write_png(os.path.join(images, file), draw(shape, COLOURS[fg], COLOURS[bg], size))
        # 2..12 words: "red square", "a red square on a blue background", ... longer with an extra phrase.
        if i % 6 == 0:
            caption = "%s %s" % (fg, shape)
        else:
            extra = EXTRAS[i % len(EXTRAS)]
            caption = "a %s %s on a %s background%s" % (fg, shape, bg, " " + extra if extra else "")
        assert 2 <= len(caption.split()) <= 12, caption
        lines.append("%s\t%s\n" % (file, caption))
    with open(os.path.join(out, "captions.tsv"), "w") as f:
        f.writelines(lines)
    return len(lines)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: write_t2i_checkpoints.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    nv = write_vae(os.path.join(out, "vae"))
    nt = write_t5(os.path.join(out, "t5"))
    ni = write_images(out)
    print("wrote %d VAE tensors (F16), %d T5 tensors (BF16 + F32 shards), %d captioned images -> %s" % (nv, nt, ni, out))


if __name__ == "__main__":
    main()
