"""safetensors read/write for the PyTorch reference: golden fixtures, `starflow convert` exports, --forward
results. Written with numpy alone so that the reference needs nothing beyond Debian's python3-torch and
numpy; F32/F64 tensors only, little-endian, with the string metadata the fixtures carry (`config`, ...)."""
import json
import os
import struct

import numpy as np

NP_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


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
