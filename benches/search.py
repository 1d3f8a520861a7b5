#!/usr/bin/env python3
"""Search latency, per store and mode, through the daemon's `POST /v1/search`.

The Python docs' tutorial, FAQ, how-to and usage pages (reST sources from
Debian's python3.11-doc, fetched by benches/corpus.sh) go through parse, chunk
(256 tokens) and embed into LanceDB and PostgreSQL + pgvector, both with
`full_text: true`. Then a daemon serves the pipeline and each query below is
sent `--rounds` times per store and mode (k = 10, one client, one request at a
time); the client's wall time per request gives p50 and p95.

Peer, same run: the Python `lancedb` package's own full-text search on the
same LanceDB table, with the same query strings (the index sluice built): the
text-mode ratio says what sluice's API, filter checks and JSON add.

    eval "$(bash scripts/services.sh up | sed 's/^/export /')"
    python3 benches/search.py [--rounds 5]
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/sluice-target"))

QUERIES = [
    "how do I read a file line by line", "list comprehension with a condition",
    "what is a virtual environment", "how to sort a dictionary by value",
    "difference between a tuple and a list", "catch several exceptions at once",
    "format a float with two decimals", "why is my default argument shared",
    "how do generators save memory", "logging to a file and the console",
    "regular expression to match an email", "run a subprocess and read its output",
    "unicode strings and bytes", "how does the garbage collector work",
    "descriptor protocol __get__", "sorting with a key function",
    "argparse subcommands", "what does the global interpreter lock do",
    "install a package with pip", "socket programming client and server",
    "functools partial", "enum members and values", "curses window refresh",
    "how to make a script executable on Unix", "ipaddress network contains",
]

PIPELINE = """name: bench
checkpoint: {{interval: 2s}}
source: {{type: files, path: ../data}}
stages:
  - {{name: parse, type: parse}}
  - {{name: chunks, type: chunk, max_tokens: 256, overlap_tokens: 16}}
  - {{name: embed, type: embed, model: {model}}}
sinks:
  - {{name: lance, type: lancedb, uri: ../lance, table: chunks, dimension: 384, full_text: true}}
  - {{name: pg, type: pgvector, url: "{pg}", table: {table}, dimension: 384, full_text: true}}
"""


def corpus(dest):
    src = subprocess.run(["bash", os.path.join(ROOT, "benches/corpus.sh")], capture_output=True,
                         text=True, check=True).stdout.strip()
    n = 0
    for part in ("tutorial", "faq", "howto", "using"):
        for f in glob.glob(f"{src}/**/_sources/{part}/*.txt", recursive=True):
            shutil.copy(f, os.path.join(dest, f"{part}-{os.path.basename(f)}"))
            n += 1
    return n


def post(url, body, route="/v1/search"):
    req = urllib.request.Request(url + route, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def pct(values, p):
    values = sorted(values)
    return values[max(1, -(-len(values) * p // 100)) - 1]


def row(name, ms):
    print(f"| {name} | {pct(ms, 50):.1f} | {pct(ms, 95):.1f} | {statistics.mean(ms):.1f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bin", default=os.path.join(TARGET, "debug", "sluice"),
                    help="the sluice binary to measure (to compare two builds)")
    args = ap.parse_args()
    pg = os.environ["SLUICE_TEST_PG_URL"]
    bin = args.bin
    work = tempfile.mkdtemp(prefix="sluice-search-bench-")
    os.makedirs(f"{work}/data")
    os.makedirs(f"{work}/pipelines")
    docs = corpus(f"{work}/data")
    table = f"search_bench_{os.getpid()}"
    with open(f"{work}/pipelines/bench.yaml", "w") as f:
        f.write(PIPELINE.format(model=os.path.join(ROOT, "models/all-minilm-l6-v2"), pg=pg, table=table))
    t = time.monotonic()
    subprocess.run([bin, "--state", "state", "run", "--no-progress", "pipelines/bench.yaml"], cwd=work,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d = subprocess.Popen([bin, "daemon", "--pipelines", "pipelines", "--state", "state", "--listen",
                          "127.0.0.1:0"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    url = d.stdout.readline().strip().rsplit(" ", 1)[-1]
    try:
        chunks = post(url, {"pipeline": "bench", "query": "SELECT count(*) AS n FROM lance"}, "/v1/sql")
        print(f"{docs} documents, ingested in {time.monotonic() - t:.0f} s; "
              f"{chunks[0]['n']} chunks; {args.rounds} rounds of {len(QUERIES)} queries")
        print("\n| store, mode | p50 ms | p95 ms | mean ms |\n|---|---|---|---|")
        text_lance = []
        for sink in ("lance", "pg"):
            for mode in ("vector", "text", "hybrid"):
                ms = []
                for _ in range(args.rounds):
                    for q in QUERIES:
                        s = time.perf_counter()
                        post(url, {"pipeline": "bench", "query": q, "sink": sink, "k": 10, "mode": mode})
                        ms.append((time.perf_counter() - s) * 1e3)
                row(f"sluice {sink} {mode}", ms)
                if (sink, mode) == ("lance", "text"):
                    text_lance = ms
            ms = []
            for _ in range(args.rounds):
                for q in QUERIES:
                    s = time.perf_counter()
                    post(url, {"pipeline": "bench", "query": q, "sink": sink, "k": 10, "mode": "vector",
                               "where": "token_count > 100 AND doc_id LIKE '%tutorial-%'"})
                    ms.append((time.perf_counter() - s) * 1e3)
            row(f"sluice {sink} vector, with a filter", ms)
        import lancedb  # the peer, on the same table and index
        tbl = lancedb.connect(f"{work}/lance").open_table("chunks")
        ms = []
        for _ in range(args.rounds):
            for q in QUERIES:
                s = time.perf_counter()
                tbl.search(q, query_type="fts").limit(10).to_arrow()
                ms.append((time.perf_counter() - s) * 1e3)
        row("peer: lancedb (Python) full-text search", ms)
        print(f"\nratio, LanceDB text mode p50: sluice / peer = {pct(text_lance, 50) / pct(ms, 50):.2f}")
    finally:
        d.terminate()
        d.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
