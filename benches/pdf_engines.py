#!/usr/bin/env python3
"""PDF text engines side by side, with poppler's `pdftotext` as the reference.

    python3 benches/pdf_engines.py [--timeout 30] [--limit N]

Corpus: the PDFs of Debian's texlive-latex-base-doc and texlive-humanities-doc
(fetched with `apt-get download`, unpacked with `dpkg -x`, cached in
~/.cache/sluice-bench/pdfs). Engines: the Rust crates built by benches/pdf (its
own workspace, not part of sluice's build), one process per file, each stopped
after --timeout seconds. For each engine it prints:

- speed: MiB of PDF per second of extraction, over the files every engine
  read (so each engine is timed on the same bytes), and over the files it read;
- yield: the share of the files where pdftotext finds text (20 or more word
  characters) that the engine also gets text from;
- quality: word-level F1 of the engine's words against pdftotext's (lowercased
  runs of letters and digits, counted as a multiset), averaged over those
  files; a file the engine failed on scores 0.

pdftotext's own speed is printed as a peer line (it runs as a process too, and
its time includes its start-up of a few milliseconds, so it is slightly
understated).

    python3 benches/pdf_engines.py --sluice

instead times a whole `sluice run` (files -> parse -> Parquet, start-up
included, the parse stage at its default parallelism) over the corpus once per
`pdf_engine`, against pdftotext run over the same files with as many processes
at once as there are cores, in the same run.
"""
import argparse
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINES = ["pdf-extract", "lopdf", "pdf_oxide", "oxidize-pdf"]
WORD = re.compile(r"[^\W_]+", re.UNICODE)


def corpus(dest):
    if not glob.glob(os.path.join(dest, "*.pdf")):
        os.makedirs(dest, exist_ok=True)
        tmp = tempfile.mkdtemp()
        for pkg in ["texlive-latex-base-doc", "texlive-humanities-doc"]:
            subprocess.run(["apt-get", "download", pkg], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL)
        for deb in glob.glob(os.path.join(tmp, "*.deb")):
            subprocess.run(["dpkg", "-x", deb, os.path.join(tmp, "x")], check=True)
        for i, pdf in enumerate(sorted(glob.glob(os.path.join(tmp, "x", "**", "*.pdf"),
                                                 recursive=True))):
            shutil.copy(pdf, os.path.join(dest, f"{i:04d}-{os.path.basename(pdf)}"))
        shutil.rmtree(tmp)
    return sorted(glob.glob(os.path.join(dest, "*.pdf")))


def build():
    target = os.environ.get("CARGO_TARGET_DIR",
                            os.path.expanduser("~/.cache/sluice-target")) + "-pdf-engines"
    subprocess.run(["cargo", "build", "--quiet", "--locked",
                    "--manifest-path", os.path.join(ROOT, "benches/pdf/Cargo.toml")],
                   check=True, env=dict(os.environ, CARGO_TARGET_DIR=target))
    return os.path.join(target, "debug", "pdf-engines")


def words(text):
    return collections.Counter(w.lower() for w in WORD.findall(text))


def f1(got, want):
    if not got or not want:
        return 0.0
    common = sum((got & want).values())
    if common == 0:
        return 0.0
    p, r = common / sum(got.values()), common / sum(want.values())
    return 2 * p * r / (p + r)


def run_engine(binary, engine, pdf, out, timeout):
    try:
        p = subprocess.run([binary, engine, out, pdf], capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"secs": None, "error": f"over {timeout} s"}
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        return {"secs": None, "error": f"exit {p.returncode}: {p.stderr.strip()[-200:]}"}
    return json.loads(lines[-1])


def run_pdftotext(pdf, out, timeout):
    started = time.perf_counter()
    try:
        p = subprocess.run(["pdftotext", "-enc", "UTF-8", pdf, out], capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"secs": None, "error": "timeout"}
    secs = time.perf_counter() - started
    if p.returncode != 0:
        return {"secs": None, "error": f"exit {p.returncode}"}
    return {"secs": secs, "error": None}


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


SLUICE_ENGINES = ["pdf-extract", "lopdf"]


def sluice_binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/sluice-target"))
    subprocess.run(["cargo", "build", "--quiet", "--bin", "sluice"], cwd=ROOT, check=True,
                   env=dict(os.environ, CARGO_TARGET_DIR=target))
    return os.path.join(target, "debug", "sluice")


def through_sluice(folder, n):
    """Seconds of `sluice run` per engine, and of pdftotext over the same files."""
    binary = sluice_binary()
    work = tempfile.mkdtemp(prefix="pdf-sluice-")
    rows = []
    for e in SLUICE_ENGINES:
        pipeline = os.path.join(work, f"{e}.yaml")
        with open(pipeline, "w") as f:
            f.write(f"name: pdf-{e}\nstate_dir: ./state-{e}\n"
                    f"source: {{type: files, path: {folder}, include: ['*.pdf']}}\n"
                    f"stages:\n  - {{name: parse, type: parse, pdf_engine: {e}, timeout: 60s}}\n"
                    f"sinks:\n  - {{name: out, type: parquet, path: ./out-{e}}}\n")
        started = time.monotonic()
        p = subprocess.run([binary, "run", pipeline], cwd=work, capture_output=True, text=True)
        secs = time.monotonic() - started
        summary = (p.stdout.strip().splitlines() or [p.stderr.strip()[-200:]])[-1]
        rows.append((f"sluice, `pdf_engine: {e}`", secs, summary))
    cores = os.cpu_count() or 1
    out = os.path.join(work, "pdftotext")
    os.makedirs(out)
    started = time.monotonic()
    subprocess.run(f"ls *.pdf | xargs -P{cores} -I{{}} pdftotext -q -enc UTF-8 {{}} {out}/{{}}.txt",
                   shell=True, cwd=folder, check=False)
    peer = time.monotonic() - started
    shutil.rmtree(work)
    print(f"{n} PDFs, whole runs, {cores} cores\n")
    print("| run | seconds | x pdftotext | summary |\n|---|---|---|---|")
    for name, secs, summary in rows:
        print(f"| {name} | {secs:.1f} | {peer / secs:.2f} | {summary} |")
    print(f"| peer: pdftotext, {cores} processes at once | {peer:.1f} | 1.00 | |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--limit", type=int, default=0, help="only the first N PDFs")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--sluice", action="store_true",
                    help="time whole `sluice run`s per pdf_engine instead")
    args = ap.parse_args()
    if not shutil.which("pdftotext"):
        sys.exit("needs pdftotext: apt-get install poppler-utils")
    folder = os.path.expanduser("~/.cache/sluice-bench/pdfs")
    pdfs = corpus(folder)
    if args.sluice:
        return through_sluice(folder, len(pdfs))
    if args.limit:
        pdfs = pdfs[: args.limit]
    engines = args.engines.split(",")
    binary = build()
    work = tempfile.mkdtemp(prefix="pdf-engines-")
    results = {e: [] for e in engines + ["pdftotext"]}
    reference = []
    for i, pdf in enumerate(pdfs):
        size = os.path.getsize(pdf)
        ref_out = os.path.join(work, f"{i}.pdftotext.txt")
        r = run_pdftotext(pdf, ref_out, args.timeout)
        results["pdftotext"].append(dict(r, bytes=size))
        ref_words = words(read(ref_out)) if r["error"] is None else collections.Counter()
        reference.append(ref_words)
        for e in engines:
            out = os.path.join(work, f"{i}.{e}.txt")
            r = run_engine(binary, e, pdf, out, args.timeout)
            got = words(read(out)) if r.get("error") is None else collections.Counter()
            results[e].append(dict(r, bytes=size, f1=f1(got, ref_words),
                                   text=sum(got.values()) > 0))
        print(f"\r{i + 1}/{len(pdfs)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    shutil.rmtree(work)
    report(pdfs, engines, results, reference)


def report(pdfs, engines, results, reference):
    everyone = [i for i in range(len(pdfs))
                if all(results[e][i].get("error") is None for e in engines + ["pdftotext"])]
    with_text = [i for i in range(len(pdfs)) if sum(reference[i].values()) >= 20]
    mib = lambda idx: sum(results["pdftotext"][i]["bytes"] for i in idx) / 2**20
    print(f"{len(pdfs)} PDFs, {mib(range(len(pdfs))):.1f} MiB; every engine read "
          f"{len(everyone)} ({mib(everyone):.1f} MiB); pdftotext finds text in {len(with_text)}\n")
    print("| engine | MiB/s, files all read | MiB/s, files it read | failed | "
          "yields text | word F1 vs pdftotext (mean) | files with F1 < 0.8 |")
    print("|---|---|---|---|---|---|---|")
    for e in engines + ["pdftotext"]:
        rs = results[e]
        ok = [i for i in range(len(pdfs)) if rs[i].get("error") is None]
        speed = lambda idx: mib(idx) / max(sum(rs[i]["secs"] for i in idx), 1e-9)
        failed = len(pdfs) - len(ok)
        if e == "pdftotext":
            print(f"| pdftotext (peer, reference) | {speed(everyone):.1f} | {speed(ok):.1f} | "
                  f"{failed} | | | |")
            continue
        yields = sum(1 for i in with_text if rs[i]["text"]) / max(len(with_text), 1)
        quality = sum(rs[i]["f1"] for i in with_text) / max(len(with_text), 1)
        poor = sum(1 for i in with_text if rs[i]["f1"] < 0.8)
        print(f"| {e} | {speed(everyone):.1f} | {speed(ok):.1f} | {failed} | "
              f"{yields:.1%} | {quality:.3f} | {poor} |")
    for e in engines:
        errors = collections.Counter((r.get("error") or "")[:60] for r in results[e]
                                     if r.get("error"))
        if errors:
            print(f"\n{e} failures: " + "; ".join(f"{n}x {m}" for m, n in errors.most_common(4)))


if __name__ == "__main__":
    main()
