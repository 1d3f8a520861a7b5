#!/usr/bin/env python3
"""Kafka and S3 source throughput, against the test servers (tansu, moto).

Kafka: N messages on a 4-partition topic, read by `sluice run` through
source → SQL → Parquet (no embedding), and by a plain rdkafka consume loop
(connectors/kafka/examples/consume_loop.rs) in the same run; prints both rates
and their ratio. S3: M objects under a prefix, listed alone (an include glob that
matches nothing) and then listed and read into Parquet.

    eval "$(bash scripts/services.sh up | sed 's/^/export /')"
    python3 benches/kafka.py [--messages 50000] [--size 500] [--objects 2000]
"""
import argparse
import json
import os
import re
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tests", "python", "kafka_tool.py")
S3 = os.path.join(ROOT, "tests", "python", "s3_objects.py")


def sluice_run(bin, dir, yaml):
    with open(os.path.join(dir, "p.yaml"), "w") as f:
        f.write(yaml)
    started = time.monotonic()
    out = subprocess.run([bin, "run", "--no-progress", "p.yaml"], cwd=dir, check=True,
                         capture_output=True, text=True).stdout
    return time.monotonic() - started, out.splitlines()[0]


def main():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/sluice-target"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=50000)
    ap.add_argument("--size", type=int, default=500)
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--bin", default=os.path.join(target, "debug", "sluice"))
    ap.add_argument("--loop", default=os.path.join(target, "debug", "examples", "consume_loop"))
    args = ap.parse_args()
    brokers = os.environ.get("SLUICE_TEST_KAFKA_BROKERS", "127.0.0.1:59092")
    s3 = os.environ.get("SLUICE_TEST_S3_ENDPOINT", "http://127.0.0.1:59000")
    tag = f"{os.getpid()}_{int(time.time())}"

    topic = f"bench_{tag}"
    subprocess.run(["python3", TOOL, brokers, "create", topic, "4"], check=True)
    t = time.monotonic()
    subprocess.run(["python3", TOOL, brokers, "generate", topic, str(args.messages), str(args.size)],
                   check=True, capture_output=True)
    print(f"produced {args.messages} messages of ~{args.size} B in {time.monotonic() - t:.1f} s")
    n, nbytes, secs = subprocess.run([args.loop, brokers, topic], check=True, capture_output=True,
                                     text=True).stdout.split()
    loop_rate = int(n) / float(secs)
    print(f"rdkafka consume loop: {loop_rate:9.0f} msg/s ({int(nbytes) / float(secs) / 2**20:.1f} MiB/s)")
    dir = tempfile.mkdtemp(prefix="sluice-kafka-bench-")
    took, line = sluice_run(args.bin, dir, f"""name: kbench
source: {{type: kafka, brokers: "{brokers}", topics: [{topic}], group_id: g_{tag}, stop_at_end: true, batch_size: 1024}}
stages:
  - type: sql
    query: SELECT doc_id, version, op, content, modified_at FROM input
sinks:
  - {{name: out, type: parquet, path: ./out}}
""")
    secs_run = float(re.search(r", ([\d.]+)s, peak", line).group(1))
    rate = args.messages / secs_run
    print(f"sluice source→sql→parquet: {rate:9.0f} msg/s ({secs_run:.2f} s in the run, "
          f"{took:.2f} s with start-up and group join)  [{line}]")
    print(f"ratio sluice / consume loop: {rate / loop_rate:.2f}")

    if args.objects == 0:
        return
    bucket = f"bench-{tag}".replace("_", "-")
    ops = {"create_bucket": True, "generate": {"prefix": "docs/", "count": args.objects, "size": 2000}}
    subprocess.run(["python3", S3, s3, bucket], input=json.dumps(ops), text=True, check=True,
                   capture_output=True)
    store = (f'storage_options: {{endpoint: "{s3}", region: us-east-1, access_key_id: t, '
             f'secret_access_key: t}}')
    took, line = sluice_run(args.bin, dir, f"""name: slist
state_dir: .list
source: {{type: files, path: "s3://{bucket}/docs", include: ["*.none"], {store}}}
sinks:
  - {{name: out, type: parquet, path: ./list}}
""")
    print(f"S3 listing of {args.objects} objects (moto): {took:.2f} s with start-up, "
          f"{args.objects / took:.0f} objects/s")
    took, line = sluice_run(args.bin, dir, f"""name: sread
state_dir: .read
source: {{type: files, path: "s3://{bucket}/docs", read_concurrency: 16, batch_size: 64, {store}}}
stages:
  - type: sql
    query: SELECT doc_id, version, content FROM input
sinks:
  - {{name: out, type: parquet, path: ./read}}
""")
    secs_run = float(re.search(r", ([\d.]+)s, peak", line).group(1))
    mib = args.objects * 2000 / 2**20
    print(f"S3 list + read {args.objects} objects: {args.objects / secs_run:.0f} objects/s, "
          f"{mib / secs_run:.2f} MiB/s  [{line}]")


if __name__ == "__main__":
    main()
