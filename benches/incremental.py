#!/usr/bin/env python3
"""Incremental re-run vs. full run, end to end with the sluice binary.

A generated corpus (2,000 Markdown documents, 1 to 3 paragraphs each) goes through
the quickstart shape: parse -> chunk -> embed -> Parquet + LanceDB + feature store
(embedded defaults, no servers). Then 1% of the documents change (one paragraph
each), 1% are deleted and 1% added, and the pipeline runs again. Prints both
times and their ratio.

    python3 benches/incremental.py [--docs 2000] [--bin PATH]
"""
import argparse
import os
import random
import shutil
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def text(doc, version):
    n = 1 + doc % 3
    out = f"# Document {doc}\n\n"
    for p in range(n):
        v = version if p == n - 1 else 0
        out += (f"Paragraph {p} of document {doc}, revision {v}, explains topic {doc * 7 + p} "
                "with care: epochs, barriers and sinks keep every row exactly once.\n\n")
    return out


def write(dir, doc, version):
    with open(os.path.join(dir, "data", f"doc{doc:05}.md"), "w") as f:
        f.write(text(doc, version))


def run(bin, dir):
    started = time.monotonic()
    out = subprocess.run([bin, "run", "p.yaml"], cwd=dir, check=True, capture_output=True, text=True)
    return time.monotonic() - started, out.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=2000)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/sluice-target"))
    ap.add_argument("--bin", default=os.path.join(target, "debug", "sluice"))
    args = ap.parse_args()
    dir = tempfile.mkdtemp(prefix="sluice-incremental-")
    os.makedirs(os.path.join(dir, "data"))
    for d in range(args.docs):
        write(dir, d, 0)
    model = os.path.join(ROOT, "models", "all-minilm-l6-v2")
    with open(os.path.join(dir, "p.yaml"), "w") as f:
        f.write(f"""name: incremental
source: {{type: files, path: ./data}}
stages:
  - {{type: parse}}
  - {{type: chunk, max_tokens: 48, overlap_tokens: 0, strategy: markdown}}
  - {{type: embed, model: "{model}"}}
sinks:
  - {{name: chunks, type: parquet, path: ./out}}
  - {{name: vectors, type: lancedb, uri: ./lance, table: chunks}}
  - name: features
    type: feature_store
    query: SELECT doc_id, op, count(*) AS chunk_count, max(modified_at) AS event_timestamp FROM input GROUP BY doc_id, op
    entity: [doc_id]
    offline: ./features
""")
    full, summary = run(args.bin, dir)
    print(f"full run:        {full:7.2f} s  {summary.splitlines()[0]}")
    rng = random.Random(7)
    n = max(1, args.docs // 100)
    picked = rng.sample(range(args.docs), 2 * n)
    time.sleep(0.02)
    for d in picked[:n]:
        write(dir, d, 1)
    for d in picked[n:]:
        os.remove(os.path.join(dir, "data", f"doc{d:05}.md"))
    for d in range(args.docs, args.docs + n):
        write(dir, d, 0)
    again, summary = run(args.bin, dir)
    print(f"incremental run: {again:7.2f} s  {summary.splitlines()[0]}")
    for line in summary.splitlines()[1:]:
        print(f"                 {line.strip()}")
    print(f"ratio: {100 * again / full:.1f}% of the full run (goal: <= 3%)")
    shutil.rmtree(dir)


if __name__ == "__main__":
    main()
