#!/usr/bin/env python3
"""Daemon overhead and idle cost.

1. The same bounded pipeline (files → parse → chunk → Parquet over N generated
   Markdown documents) under `sluice run` and under `sluice daemon`, alternated
   in the same run; the daemon's time is from its start until the API reports
   the pipeline `finished`. Prints both and their ratio.
2. A daemon serving 10 idle pipelines (watched, empty folders): CPU time and
   resident memory over a quiet window, read from /proc.

    python3 benches/daemon.py [--docs 3000] [--rounds 3] [--idle 30]
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PIPELINE = """name: {name}
checkpoint: {{interval: 500ms}}
source: {{type: files, path: ../data/{data}{watch}}}
stages:
  - {{name: parse, type: parse}}
  - {{name: chunks, type: chunk, max_tokens: 128, overlap_tokens: 16}}
sinks:
  - {{name: out, type: parquet, path: ../out/{name}}}
"""


def corpus(dir, n):
    os.makedirs(dir, exist_ok=True)
    words = "stream ingest vector index feature store epoch barrier checkpoint sink stage".split()
    for i in range(n):
        body = " ".join(words[(i + j) % len(words)] for j in range(400))
        with open(os.path.join(dir, f"doc-{i:06}.md"), "w") as f:
            f.write(f"# Document {i}\n\n{body}\n")


def start_daemon(bin, dir, extra=()):
    p = subprocess.Popen([bin, "daemon", "--pipelines", "pipelines", "--state", "state",
                          "--listen", "127.0.0.1:0", *extra], cwd=dir,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = p.stdout.readline().strip().rsplit(" ", 1)[-1]
    return p, url


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def under_run(bin, dir):
    shutil.rmtree(os.path.join(dir, "state"), ignore_errors=True)
    shutil.rmtree(os.path.join(dir, "out"), ignore_errors=True)
    t = time.monotonic()
    subprocess.run([bin, "--state", "state", "run", "--no-progress", "pipelines/p.yaml"], cwd=dir,
                   check=True, capture_output=True)
    return time.monotonic() - t


def under_daemon(bin, dir):
    shutil.rmtree(os.path.join(dir, "state"), ignore_errors=True)
    shutil.rmtree(os.path.join(dir, "out"), ignore_errors=True)
    t = time.monotonic()
    p, url = start_daemon(bin, dir, ["--poll", "50ms"])
    try:
        while True:
            try:
                if get(f"{url}/v1/pipelines/p")["state"] == "finished":
                    break
            except Exception:
                pass
            time.sleep(0.02)
        return time.monotonic() - t
    finally:
        p.terminate()
        p.wait()


def proc_cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/sluice-target"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--bin", default=os.path.join(target, "debug", "sluice"))
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as dir:
        corpus(os.path.join(dir, "data", "docs"), a.docs)
        os.makedirs(os.path.join(dir, "pipelines"))
        with open(os.path.join(dir, "pipelines", "p.yaml"), "w") as f:
            f.write(PIPELINE.format(name="p", data="docs", watch=""))
        runs, daemons = [], []
        for _ in range(a.rounds):
            runs.append(under_run(a.bin, dir))
            daemons.append(under_daemon(a.bin, dir))
        r, d = min(runs), min(daemons)
        print(f"overhead: {a.docs} documents; sluice run {r:.2f}s (best of {a.rounds}: "
              f"{', '.join(f'{x:.2f}' for x in runs)}), daemon {d:.2f}s "
              f"({', '.join(f'{x:.2f}' for x in daemons)}); daemon/run = {d / r:.3f}")

    with tempfile.TemporaryDirectory() as dir:
        os.makedirs(os.path.join(dir, "pipelines"))
        for i in range(10):
            os.makedirs(os.path.join(dir, "data", f"idle{i}"))
            with open(os.path.join(dir, "pipelines", f"idle{i}.yaml"), "w") as f:
                f.write(PIPELINE.format(name=f"idle{i}", data=f"idle{i}",
                                        watch=", watch: true, poll_interval: 2s"))
        p, url = start_daemon(a.bin, dir)
        try:
            while len([x for x in get(f"{url}/v1/pipelines")["pipelines"] if x["state"] == "running"]) < 10:
                time.sleep(0.1)
            time.sleep(5)  # let start-up settle
            cpu0, t0 = proc_cpu_seconds(p.pid), time.monotonic()
            time.sleep(a.idle)
            cpu1, t1 = proc_cpu_seconds(p.pid), time.monotonic()
            rss = proc_rss(p.pid)
            print(f"idle: 10 pipelines (watch, poll 2s, folder scan 1s) for {t1 - t0:.0f}s: "
                  f"CPU {100 * (cpu1 - cpu0) / (t1 - t0):.2f}% of one core, RSS {rss / 2**20:.1f} MiB")
        finally:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
