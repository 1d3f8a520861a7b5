#!/usr/bin/env python3
"""Edit churn: how many chunks one small edit makes new, sluice against LangChain.

Documents of 10 to 100 chunks (cl100k_base, 256 tokens, 32 overlap) are taken
from the Python docs corpus (`benches/corpus.sh`). Each gets three edits in its
middle, one at a time: a changed word, an inserted sentence, a deleted line. For
each edit, a chunk of the new version is *new* when its text is not the text of
any chunk of the old version: that chunk must be embedded again (the embed
cache is keyed by the text). The same documents and edits go through

- sluice: the chunk stage as a pipeline runs it (`sluice run`: files -> parse
  -> chunk -> Parquet; the texts read back with `sluice sql`), and
- LangChain: `RecursiveCharacterTextSplitter.from_tiktoken_encoder` with the
  same encoding and sizes, on the same text.

    python3 -m venv ~/.cache/sluice-bench/langchain-venv
    ~/.cache/sluice-bench/langchain-venv/bin/pip install langchain-text-splitters==0.3.8 tiktoken==0.9.0
    ~/.cache/sluice-bench/langchain-venv/bin/python benches/churn.py [--docs 200] [--seed 7]
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from langchain_chunk import seed_tiktoken_cache  # noqa: E402

seed_tiktoken_cache()
import tiktoken  # noqa: E402
from langchain_text_splitters import RecursiveCharacterTextSplitter  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EDITS = ["word", "insert", "delete"]
SENTENCE = "This sentence was inserted by the churn bench to change one place. "


def corpus(path):
    for dirpath, _, files in os.walk(path):
        for f in sorted(files):
            if f.endswith(".txt"):
                with open(os.path.join(dirpath, f), "rb") as fh:
                    yield fh.read().decode("utf-8", "replace")


def edit(text, kind, rng):
    """One edit near the middle of `text`."""
    lines = text.split("\n")
    middle = [i for i in range(len(lines) // 3, 2 * len(lines) // 3) if len(lines[i].split()) >= 4]
    if not middle:
        return None
    i = rng.choice(middle)
    words = lines[i].split(" ")
    if kind == "word":
        j = rng.randrange(len(words))
        words[j] = "changed" if words[j] != "changed" else "altered"
        lines[i] = " ".join(words)
    elif kind == "insert":
        j = rng.randrange(len(words))
        words.insert(j, SENTENCE.strip())
        lines[i] = " ".join(words)
    else:
        del lines[i]
    return "\n".join(lines)


def sluice_chunks(bin, files):
    """{name: [chunk text, ...]} for each (name, text), through a real run."""
    work = tempfile.mkdtemp(prefix="sluice-churn-")
    os.makedirs(os.path.join(work, "data"))
    for name, text in files:
        with open(os.path.join(work, "data", name), "w") as f:
            f.write(text)
    with open(os.path.join(work, "p.yaml"), "w") as f:
        f.write("""name: churn
state_dir: ./state
source: {type: files, path: ./data}
stages:
  - {name: parse, type: parse}
  - {name: chunks, type: chunk, encoding: cl100k_base, max_tokens: 256, overlap_tokens: 32}
sinks:
  - {name: out, type: parquet, path: ./out}
""")
    subprocess.run([bin, "run", "p.yaml", "--no-progress"], cwd=work, check=True, capture_output=True)
    out = subprocess.run(
        [bin, "sql", "--pipeline", "p.yaml", "--format", "json", "--max-rows", "10000000",
         "SELECT doc_id, chunk_index, text FROM out ORDER BY doc_id, chunk_index"],
        cwd=work, check=True, capture_output=True, text=True).stdout
    chunks = {}
    for row in json.loads(out):
        chunks.setdefault(row["doc_id"].rsplit("/", 1)[-1], []).append(row["text"])
    return chunks


def new_chunks(old, new):
    seen = set(old)
    return sum(1 for c in new if c not in seen)


def summary(counts):
    counts = sorted(counts)
    mean = sum(counts) / len(counts)
    return f"{mean:.2f} mean, {counts[len(counts) // 2]} median, {counts[-1]} max"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--corpus", default=os.path.expanduser("~/.cache/sluice-bench/python-docs"))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/sluice-target"))
    ap.add_argument("--bin", default=os.path.join(target, "debug", "sluice"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    enc = tiktoken.get_encoding("cl100k_base")
    splitter = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
        encoding_name="cl100k_base", chunk_size=256, chunk_overlap=32)
    # Documents of 10 to 100 chunks (by token count: 224 new tokens a chunk).
    docs = [t for t in corpus(args.corpus) if 10 <= len(enc.encode(t, disallowed_special=())) / 224 <= 100]
    rng.shuffle(docs)
    docs = docs[: args.docs]
    files = []
    for n, text in enumerate(docs):
        files.append((f"d{n:04}.txt", text))
        for kind in EDITS:
            edited = edit(text, kind, rng)
            if edited is not None and edited != text:
                files.append((f"d{n:04}.{kind}.txt", edited))
    ours = sluice_chunks(args.bin, files)
    theirs = {name: splitter.split_text(text) for name, text in files}
    print(f"{len(docs)} documents of 10 to 100 chunks, seed {args.seed}; new chunks per edit:")
    print("| edit | edits | sluice | LangChain | sluice chunks per doc |")
    print("|---|---|---|---|---|")
    for kind in EDITS + ["all"]:
        s_counts, l_counts, sizes = [], [], []
        for n in range(len(docs)):
            base = f"d{n:04}.txt"
            for k in (EDITS if kind == "all" else [kind]):
                name = f"d{n:04}.{k}.txt"
                if name not in theirs:
                    continue
                s_counts.append(new_chunks(ours[base], ours[name]))
                l_counts.append(new_chunks(theirs[base], theirs[name]))
                sizes.append(len(ours[base]))
        print(f"| {kind} | {len(s_counts)} | {summary(s_counts)} | {summary(l_counts)} | "
              f"{sum(sizes) / len(sizes):.0f} |")


if __name__ == "__main__":
    main()
