#!/usr/bin/env python3
"""Peak RSS stays flat under backpressure: the bench corpus vs. 10x of it, with a
sink made slow on purpose.

The pipeline parses and chunks the bench corpus (the Python 3.11 docs from
benches/corpus.sh) into a Parquet sink and a per-chunk feature store whose Redis
sits behind tests/python/tcp_proxy.py with added latency, so Redis is the slow
hop and backpressure holds the source back. The 10x corpus is ten copies of the
bench corpus. Prints the peak RSS of each run (sluice's own report, VmHWM) and
their ratio; the goal is within 10%.

    eval "$(bash scripts/services.sh up | sed 's/^/export /')"
    python3 benches/rss.py [--delay-ms 1]
"""
import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def corpus():
    return subprocess.run(["bash", os.path.join(ROOT, "benches", "corpus.sh")],
                          check=True, capture_output=True, text=True).stdout.strip()


def run(bin, src, copies, redis_port, delay_ms, bounds):
    dir = tempfile.mkdtemp(prefix="sluice-rss-")
    for i in range(copies):
        shutil.copytree(src, os.path.join(dir, "data", f"copy{i}"))
    proxy = subprocess.Popen(["python3", os.path.join(ROOT, "tests", "python", "tcp_proxy.py"),
                              str(redis_port), "--delay-ms", str(delay_ms)],
                             stdout=subprocess.PIPE, text=True)
    port = int(proxy.stdout.readline())
    with open(os.path.join(dir, "p.yaml"), "w") as f:
        f.write(f"""name: rss
{bounds}source: {{type: files, path: ./data, include: ["**/*.txt"]}}
stages:
  - {{type: parse}}
  - {{type: chunk, max_tokens: 256, overlap_tokens: 32}}
sinks:
  - {{name: chunks, type: parquet, path: ./out}}
  - name: slow
    type: feature_store
    query: SELECT chunk_id, op, token_count, modified_at AS event_timestamp FROM input
    entity: [chunk_id]
    offline: ./features
    online: {{url: "redis://127.0.0.1:{port}/", prefix: "rss{copies}_{os.getpid()}"}}
""")
    started = time.monotonic()
    child = subprocess.Popen([bin, "run", "--no-progress", "p.yaml"], cwd=dir,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    timeline = []  # VmRSS in KiB, sampled every 100 ms: growth vs. spikes
    while child.poll() is None:
        try:
            with open(f"/proc/{child.pid}/status") as f:
                timeline += [int(l.split()[1]) for l in f if l.startswith("VmRSS:")]
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.1)
    out = child.stdout.read()
    if child.returncode != 0:
        raise SystemExit(f"sluice run exited {child.returncode}")
    took = time.monotonic() - started
    proxy.kill()
    shutil.rmtree(dir)
    line = out.splitlines()[0]
    if timeline:
        # The largest RSS seen in each fifth of the run: rising = something grows.
        n = len(timeline)
        fifths = [max(timeline[i * n // 5:max((i + 1) * n // 5, i * n // 5 + 1)]) for i in range(5)]
        line += "; RSS by fifth of the run (MiB): " + " ".join(f"{k / 1024:.0f}" for k in fifths)
    m = re.search(r"peak RSS ([\d.]+) (\w+)", line)
    scale = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}[m.group(2)]
    return float(m.group(1)) * scale, took, line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay-ms", type=float, default=1.0)
    ap.add_argument("--channel-bytes", help="channels.max_bytes (default: the pipeline default)")
    ap.add_argument("--epoch-bytes", help="checkpoint.max_bytes (default: the pipeline default)")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/sluice-target"))
    ap.add_argument("--bin", default=os.path.join(target, "debug", "sluice"))
    args = ap.parse_args()
    redis = os.environ.get("SLUICE_TEST_REDIS_URL", "redis://127.0.0.1:56379/")
    redis_port = int(redis.rstrip("/").rsplit(":", 1)[1])
    src = corpus()
    bounds = ""
    if args.channel_bytes:
        bounds += f"channels: {{max_bytes: {args.channel_bytes}}}\n"
    if args.epoch_bytes:
        bounds += f"checkpoint: {{max_bytes: {args.epoch_bytes}}}\n"
    results = []
    for copies in (1, 10):
        peak, took, line = run(args.bin, src, copies, redis_port, args.delay_ms, bounds)
        results.append(peak)
        print(f"{copies:>2}x corpus: peak RSS {peak / 2**20:7.1f} MiB in {took:6.1f} s  ({line})")
    print(f"ratio: {results[1] / results[0]:.3f} (goal: within 10%, <= 1.10)")


if __name__ == "__main__":
    main()
