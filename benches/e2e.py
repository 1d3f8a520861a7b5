#!/usr/bin/env python3
"""End to end against LangChain: a whole `sluice run` (files -> parse -> chunk
256/32 -> Parquet, taps on parse and chunk, start-up included, default
settings) against LangChain's splitter reading and splitting the same files,
alternated in one run. Prints the best of each and their ratio.

    ~/.cache/sluice-bench/langchain-venv/bin/python benches/e2e.py [--rounds 3] [--no-taps]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from langchain_chunk import seed_tiktoken_cache  # noqa: E402

seed_tiktoken_cache()
from langchain_text_splitters import RecursiveCharacterTextSplitter  # noqa: E402


def langchain(corpus):
    started = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
        encoding_name="cl100k_base", chunk_size=256, chunk_overlap=32)
    chunks = 0
    for dirpath, _, files in os.walk(corpus):
        for f in files:
            if f.endswith(".txt"):
                with open(os.path.join(dirpath, f), "rb") as fh:
                    chunks += len(splitter.split_text(fh.read().decode("utf-8", "replace")))
    return time.perf_counter() - started, chunks


def sluice(bin, corpus, taps):
    work = tempfile.mkdtemp(prefix="sluice-e2e-")
    tap = "true" if taps else "false"
    with open(os.path.join(work, "p.yaml"), "w") as f:
        f.write(f"""name: e2e
state_dir: ./state
source: {{type: files, path: "{corpus}", include: ["**/*.txt"]}}
stages:
  - {{name: parse, type: parse, tap: {tap}}}
  - {{name: chunks, type: chunk, encoding: cl100k_base, max_tokens: 256, overlap_tokens: 32, tap: {tap}}}
sinks:
  - {{name: out, type: parquet, path: ./out}}
""")
    started = time.perf_counter()
    out = subprocess.run([bin, "run", "--no-progress", "p.yaml"], cwd=work, check=True,
                         capture_output=True, text=True).stdout
    took = time.perf_counter() - started
    shutil.rmtree(work)
    return took, out.splitlines()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-taps", action="store_true")
    ap.add_argument("--corpus", default=os.path.expanduser("~/.cache/sluice-bench/python-docs"))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/sluice-target"))
    ap.add_argument("--bin", default=os.path.join(target, "debug", "sluice"))
    args = ap.parse_args()
    ours, theirs = [], []
    for _ in range(args.rounds):
        took, line = sluice(args.bin, args.corpus, not args.no_taps)
        ours.append(took)
        t, chunks = langchain(args.corpus)
        theirs.append(t)
    print(f"sluice run: best {min(ours):.2f} s of {', '.join(f'{t:.2f}' for t in ours)}  [{line}]")
    print(f"LangChain:  best {min(theirs):.2f} s of {', '.join(f'{t:.2f}' for t in theirs)} ({chunks} chunks)")
    print(f"ratio: {min(theirs) / min(ours):.1f}x")


if __name__ == "__main__":
    main()
