"""The protobuf wire format of ONNX files, written and read with the standard
library alone. Shared by build_fp32_model.py (writes a graph) and
int8_lookup.py (rewrites one).

Reading keeps each field's raw bytes, so a message re-encoded from fields it
did not change is the same bytes as before."""

import struct

VARINT, I64, LEN, I32 = 0, 1, 2, 5


# --- writing -----------------------------------------------------------------


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, wire, payload):
    return varint(number << 3 | wire) + payload


def f_int(number, n):
    return field(number, VARINT, varint(n))


def f_bytes(number, data):
    if isinstance(data, str):
        data = data.encode()
    return field(number, LEN, varint(len(data)) + data)


def f_float(number, x):
    return field(number, I32, struct.pack("<f", x))


def attr(name, value):
    """An AttributeProto: float, int or list of ints."""
    if isinstance(value, float):
        return f_bytes(1, name) + f_float(2, value) + f_int(20, 1)
    if isinstance(value, int):
        return f_bytes(1, name) + f_int(3, value) + f_int(20, 2)
    if isinstance(value, list):
        return f_bytes(1, name) + b"".join(f_int(8, v) for v in value) + f_int(20, 7)
    raise TypeError(value)


def node(op, inputs, outputs, name=None, **attrs):
    """A NodeProto of the default domain."""
    return (b"".join(f_bytes(1, i) for i in inputs) + b"".join(f_bytes(2, o) for o in outputs)
            + (f_bytes(3, name) if name else b"") + f_bytes(4, op)
            + b"".join(f_bytes(5, attr(k, v)) for k, v in attrs.items()))


# --- reading -----------------------------------------------------------------


def read_varint(buf, i):
    n = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError(f"a varint runs past byte {i}")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def fields(buf):
    """[(number, wire, value, raw)]: value is an int for varints, bytes otherwise;
    raw is the whole field as encoded."""
    out, i = [], 0
    while i < len(buf):
        start = i
        key, i = read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, i = read_varint(buf, i)
        elif wire in (LEN, I64, I32):
            if wire == LEN:
                n, i = read_varint(buf, i)
            else:
                n = 8 if wire == I64 else 4
            if i + n > len(buf):
                raise ValueError(f"a field at byte {start} runs past the end")
            value, i = bytes(buf[i:i + n]), i + n
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {start}")
        out.append((number, wire, value, bytes(buf[start:i])))
    return out


def strings(fs, number):
    return [v.decode() for n, _, v, _ in fs if n == number]


def ints(fs, number):
    """A repeated int field, packed or not."""
    out = []
    for n, wire, v, _ in fs:
        if n != number:
            continue
        if wire == VARINT:
            out.append(v)
        else:
            i = 0
            while i < len(v):
                x, i = read_varint(v, i)
                out.append(x)
    return out
