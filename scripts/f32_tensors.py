"""The F32 tensors of a .safetensors file, read with the standard library
alone: {name: (shape, little-endian bytes)}. Shared by build_fp32_model.py and
reference_vectors.py."""

import json
import struct


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        a, b = t["data_offsets"]
        out[name] = (t["shape"], data[a:b])
    return out
