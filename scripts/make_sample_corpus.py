#!/usr/bin/env python3
"""Regenerate the sample corpus in pipelines/data (a few dozen small md, html, txt,
json, jsonl and PDF files). Every file is written by this script; the PDFs come
from scripts/make_pdf.py. Deterministic: the same script writes the same bytes."""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(__file__))
from make_pdf import make_pdf  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "pipelines", "data")

TOPICS = {
    "backpressure": [
        "Backpressure is what keeps a streaming system honest. When a consumer is slower than its producer, the queue between them fills up, and a bounded queue makes the producer wait instead of buffering without limit.",
        "Every hop in the pipeline is bounded in rows and in bytes. A slow vector store therefore slows the embedder, the embedder slows the chunker, and eventually the source stops reading files. Memory stays flat.",
        "Unbounded buffers hide problems until the process runs out of memory. Bounded channels turn the same situation into a visible, measurable slowdown.",
    ],
    "checkpoints": [
        "A checkpoint records the position of the source after an epoch has been made durable by every sink. Barriers flow through the stages in order with the data.",
        "When a sink receives a barrier it commits everything before it and acknowledges the epoch. Only when all sinks have acknowledged does the coordinator write the checkpoint file atomically.",
        "After a crash, each sink rolls back anything newer than the checkpoint, and the source resumes from the recorded position. Nothing is lost and nothing is written twice.",
    ],
    "chunking": [
        "Chunking splits long documents into pieces that fit an embedding model's context. Token-aware chunking counts tokens with the same encoding the model or the language model uses.",
        "Good split points follow the structure of the text: headings first, then paragraphs, then sentences, and words only as a last resort. Overlap between chunks keeps context that straddles a boundary.",
        "Tokenizing each document once and choosing split points on token offsets is far faster than re-tokenizing candidate pieces while searching for boundaries.",
    ],
    "embeddings": [
        "An embedding maps a piece of text to a vector so that similar meanings land close together. Cosine similarity between normalized vectors is the usual measure.",
        "Small sentence-transformer models such as all-MiniLM-L6-v2 produce 384-dimensional vectors and run comfortably on a CPU with ONNX Runtime.",
        "Padding every input to a fixed length wastes compute on short chunks. Sorting a micro-batch by length and padding only to its longest member is much cheaper.",
    ],
    "vector stores": [
        "A vector store keeps embeddings next to the text and metadata they came from, and answers nearest-neighbour queries. LanceDB runs embedded, with no server to operate.",
        "PostgreSQL with the pgvector extension stores vectors in an ordinary table, so a transaction can replace all rows of a document at once.",
        "Approximate nearest-neighbour indexes such as HNSW and IVF-PQ trade a little recall for a lot of speed on large tables.",
    ],
    "feature stores": [
        "A feature store serves the same features to training and to online inference. The offline store is usually Parquet partitioned by date, and the online store is a key-value database such as Redis.",
        "Point-in-time joins make sure a training example only sees feature values that existed at the time of its event, which prevents leakage from the future.",
        "An online store must never let an older event overwrite a newer one, even when events arrive out of order.",
    ],
    "parsing": [
        "Real-world documents are messy. PDFs may be truncated, encrypted or simply broken, and HTML pages carry scripts, styles and navigation that are not content.",
        "A robust ingest engine catches every parser failure, including panics, and records the document in a dead-letter store with the reason, while the rest of the batch continues.",
        "Markdown keeps its headings as structure, which later helps the chunker choose good boundaries.",
    ],
    "operations": [
        "A daemon that runs many pipelines should reload one pipeline when its file changes and leave the others running.",
        "Operators expect Prometheus metrics for throughput, queue fill, checkpoint age and error counts, and health endpoints for their orchestrator.",
        "Backfills over historical data should be bounded, resumable and show an estimate of the time they will take.",
    ],
}

QUESTIONS = [
    "How does backpressure keep memory flat?",
    "What happens to a broken PDF?",
    "Why tokenize each document only once?",
    "What is a point-in-time join?",
]


def paragraphs(rng, topic, n):
    base = TOPICS[topic]
    return [base[i % len(base)] for i in range(n)]


def main():
    rng = random.Random(42)
    os.makedirs(OUT, exist_ok=True)
    topics = sorted(TOPICS)
    written = []

    def write(name, data):
        path = os.path.join(OUT, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        written.append(name)

    for i, topic in enumerate(topics):
        ps = paragraphs(rng, topic, 3 + i % 3)
        md = f"# {topic.title()}\n\n" + "\n\n".join(ps[:2]) + f"\n\n## More on {topic}\n\n" + "\n\n".join(ps[2:])
        md += "\n\n- first point\n- second point\n\n```\nexample code block\n```\n"
        write(f"md/{topic.replace(' ', '-')}.md", md)
    for i, topic in enumerate(topics):
        ps = paragraphs(rng, topic, 3)
        body = "".join(f"<p>{p}</p>" for p in ps)
        html = (
            f"<!doctype html><html><head><title>{topic.title()} notes</title>"
            f"<style>p {{ margin: 0 }}</style><script>console.log('tracking {i}')</script></head>"
            f"<body><nav>Home | Docs</nav><h1>{topic.title()}</h1>{body}<footer>sample corpus</footer></body></html>"
        )
        write(f"html/{topic.replace(' ', '-')}.html", html)
    for i, topic in enumerate(topics):
        write(f"txt/{topic.replace(' ', '-')}.txt", "\n\n".join(paragraphs(rng, topic, 2 + i % 2)) + "\n")
    for i, topic in enumerate(topics[:4]):
        doc = {"id": i, "title": f"FAQ: {topic}", "text": " ".join(TOPICS[topic])}
        write(f"json/faq-{i}.json", json.dumps(doc, indent=2))
    lines = [json.dumps({"title": q, "text": f"Question: {q} See the documentation."}) for q in QUESTIONS]
    write("json/questions.jsonl", "\n".join(lines) + "\n")
    for i, topic in enumerate(topics[:5]):
        write(f"pdf/{topic.replace(' ', '-')}.pdf", make_pdf(f"{topic.title()} whitepaper", paragraphs(rng, topic, 4)))
    # A file with no extension, typed by sniffing.
    write("txt/NOTICE", "This sample corpus was written by scripts/make_sample_corpus.py for sluice.\n")
    print(f"wrote {len(written)} files to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
