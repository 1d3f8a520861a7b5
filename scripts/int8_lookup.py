#!/usr/bin/env python3
"""Rewrite a weight-only int8 ONNX graph so that its embedding lookups gather
int8 rows before dequantizing them, with the standard library alone.

An export that quantizes weights to int8 and dequantizes them in the graph
(`Cast` to float, then `Mul` by a scale) does so for the word-embedding table
too, ahead of the `Gather` that picks the rows of the input's tokens:

    table_q (int8 [V, D]) -> Cast -> Mul(scale [V, 1] or scalar) -> Gather(ids)

ONNX Runtime then dequantizes the whole table, for all-MiniLM-L6-v2 30,522 x
384 floats (47 MiB, twice: the cast and the product), either in every forward
pass (graph optimizations off) or once at session creation, kept beside the
int8 table for the session's life (optimizations on, by constant folding). The
rewrite gathers first:

    Gather(table_q, ids) -> Cast -> Mul(Gather(scale, ids))

Each output element is the same float product of the same two numbers, so the
vectors are bit for bit those of the original graph; only the rows a pass
looks up are dequantized.

    python3 scripts/int8_lookup.py IN.onnx OUT.onnx   # rewrite (fails if nothing matches)
    python3 scripts/int8_lookup.py --check FILE.onnx  # exit 1 if a lookup still dequantizes its table

fetch_models.py applies it to the default model and checks the result's sha256.
"""
import sys

from onnx_proto import LEN, f_bytes, fields, ints, node, strings

FLOAT, INT8, UINT8 = 1, 3, 2
# ModelProto.graph; GraphProto.node, .initializer, .output; NodeProto fields;
# TensorProto.dims, .data_type, .name; ValueInfoProto.name.
MODEL_GRAPH = 7
GRAPH_NODE, GRAPH_INIT, GRAPH_OUTPUT = 1, 5, 12


class Node:
    def __init__(self, raw):
        fs = fields(raw)
        self.raw = raw
        self.inputs, self.outputs = strings(fs, 1), strings(fs, 2)
        self.name = (strings(fs, 3) or [""])[0]
        self.op = (strings(fs, 4) or [""])[0]
        self.domain = (strings(fs, 7) or [""])[0]
        self.attrs = {}
        for n, _, v, _ in fs:
            if n == 5:
                a = fields(v)
                self.attrs[strings(a, 1)[0]] = (ints(a, 3) or [None])[0]


class Graph:
    """A GraphProto's fields, parsed once: its nodes in order, its initializers
    ({name: (dims, data_type)}) and the names of its outputs."""

    def __init__(self, raw):
        self.fields = fields(raw)
        self.nodes = [Node(v) for n, _, v, _ in self.fields if n == GRAPH_NODE]
        self.inits = {}
        for n, _, v, _ in self.fields:
            if n == GRAPH_INIT:
                t = fields(v)
                self.inits[strings(t, 8)[0]] = (ints(t, 1), (ints(t, 2) or [0])[0])
        self.outputs = {strings(fields(v), 1)[0] for n, _, v, _ in self.fields if n == GRAPH_OUTPUT}


def lookups(graph):
    """Each (cast, mul, gather, table, scale) whose gather reads a whole table
    dequantized by cast and mul, with no other reader of either product."""
    nodes, inits, outputs = graph.nodes, graph.inits, graph.outputs
    producer = {o: nd for nd in nodes for o in nd.outputs}
    readers = {}
    for nd in nodes:
        for i in nd.inputs:
            readers[i] = readers.get(i, 0) + 1
    found = []
    for g in nodes:
        if g.op != "Gather" or g.domain or g.attrs.get("axis", 0) != 0:
            continue
        mul = producer.get(g.inputs[0])
        if mul is None or mul.op != "Mul" or mul.domain or len(mul.inputs) != 2:
            continue
        for f, scale in (mul.inputs, mul.inputs[::-1]):
            cast = producer.get(f)
            if cast is None or cast.op != "Cast" or cast.domain or cast.attrs.get("to") != FLOAT:
                continue
            table = cast.inputs[0]
            if table not in inits or inits[table][1] not in (INT8, UINT8) or len(inits[table][0]) != 2:
                continue
            rows = inits[table][0][0]
            if scale not in inits or inits[scale][0] not in ([], [1], [rows, 1]):
                continue
            if readers.get(f) != 1 or readers.get(mul.outputs[0]) != 1 or {f, mul.outputs[0]} & outputs:
                continue
            found.append((cast, mul, g, table, scale))
            break
    return found


def rewrite_graph(graph_raw):
    graph = Graph(graph_raw)
    found = lookups(graph)
    if not found:
        return graph_raw, 0
    inits = graph.inits
    names = {o for nd in graph.nodes for o in nd.outputs} | set(inits)
    dropped = {x.raw for cast, mul, _, _, _ in found for x in (cast, mul)}
    by_gather = {g.raw: (cast, mul, g, table, scale) for cast, mul, g, table, scale in found}
    out = []
    for n, wire, v, raw in graph.fields:
        if n == GRAPH_NODE and v in dropped:
            continue
        if n == GRAPH_NODE and v in by_gather:
            cast, mul, g, table, scale = by_gather[v]
            ids, p = g.inputs[1], g.name or g.outputs[0]
            rows_scale = scale
            new = [node("Gather", [table, ids], [p + "/int8_rows"], name=p + "/int8_rows", axis=0)]
            if len(inits[scale][0]) == 2:
                rows_scale = p + "/row_scales"
                new.append(node("Gather", [scale, ids], [rows_scale], name=rows_scale, axis=0))
            new.append(node("Cast", [p + "/int8_rows"], [p + "/rows"], name=p + "/rows", to=FLOAT))
            # The product's operands in the original order.
            operands = [p + "/rows", rows_scale] if mul.inputs[0] == cast.outputs[0] else [rows_scale, p + "/rows"]
            new.append(node("Mul", operands, g.outputs, name=p + "/dequantize"))
            taken = names & {p + "/int8_rows", p + "/row_scales", p + "/rows"}
            if taken:
                raise ValueError(f"the graph already has {sorted(taken)}")
            out.extend(f_bytes(GRAPH_NODE, x) for x in new)
            continue
        out.append(raw)
    return b"".join(out), len(found)


def rewrite(model_raw):
    """The model with every such lookup gathering first, and how many there were."""
    out, count = [], 0
    for n, wire, v, raw in fields(model_raw):
        if n == MODEL_GRAPH and wire == LEN:
            graph, count = rewrite_graph(v)
            raw = f_bytes(MODEL_GRAPH, graph)
        out.append(raw)
    return b"".join(out), count


def remaining(model_raw):
    """How many lookups still dequantize their whole table."""
    return sum(len(lookups(Graph(v))) for n, _, v, _ in fields(model_raw) if n == MODEL_GRAPH)


def main(argv):
    try:
        return run(argv)
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        print(f"{argv[-1] if argv[0] == '--check' else argv[0]}: not an ONNX model this script can read: {e}",
              file=sys.stderr)
        return 2


def run(argv):
    if len(argv) == 2 and argv[0] == "--check":
        with open(argv[1], "rb") as f:
            left = remaining(f.read())
        if left:
            print(f"{argv[1]}: {left} embedding lookup(s) dequantize their whole int8 table", file=sys.stderr)
            return 1
        return 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0], "rb") as f:
        data, count = rewrite(f.read())
    if not count:
        print(f"{argv[0]}: no int8 embedding lookup to rewrite", file=sys.stderr)
        return 1
    with open(argv[1], "wb") as f:
        f.write(data)
    print(f"{argv[1]}: {count} lookup(s) now gather int8 rows first", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
