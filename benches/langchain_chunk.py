#!/usr/bin/env python3
"""LangChain's RecursiveCharacterTextSplitter with tiktoken, on the same corpus and
settings as `cargo bench --bench stages -- chunk` (cl100k_base, 256 tokens, 32
overlap). Prints MB/s.

    pip install langchain-text-splitters tiktoken
    python3 benches/langchain_chunk.py "$SLUICE_BENCH_CORPUS"
"""
import os
import sys
import time

from langchain_text_splitters import RecursiveCharacterTextSplitter


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
