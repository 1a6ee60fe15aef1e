"""The reader's cost per question, and how far each precision strays from fp32.

    .venv/bin/python benchmarks/bench_reader.py --reader DIR [--questions DEV.jsonl]
                                                [--articles DEV.jsonl.gz]

For each precision this CPU supports and each candidate count, it re-reads the same candidates
(the heuristic's top N for each question) and prints the median and p95 milliseconds per
question, the ratio to fp32, and the largest difference in the reader's probability from fp32,
plus how often the top candidate differs from fp32's. Without --articles it uses the bundled
samples and questions written about them. A benchmark prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import need_store

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SAMPLE_QUESTIONS = [
    "who did Wallace meet in Germany?",
    "Where is the British defence secretary travelling next week?",
    "What did the United States ask NATO allies to do?",
    "How optimistic is Wallace about stopping an invasion?",
    "How many officers will Poland send on the German course?",
    "How long did the French and Russian foreign ministers talk?",
    "What did the Dutch and German governments agree to share?",
    "When will the German regulator decide on the Baltic pipeline?",
]


def p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reader", type=Path, default=None,
                   help="a reader directory (default: the one shipped in the package)")
    p.add_argument("--questions", type=Path, help="RealTime QA questions.jsonl")
    p.add_argument("--articles", type=Path, help="their articles (ingested into a temp store)")
    p.add_argument("--data-dir", type=Path, help="an existing store to read instead")
    p.add_argument("--limit", type=int, default=60)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    from newsbot.settings import Settings
    from retrieval.precision import cpu_bf16
    from retrieval.read import SHIPPED, Reader
    from retrieval.service import Newsbot

    if args.data_dir:
        need_store(args.data_dir, ["global"])
    tmp = tempfile.TemporaryDirectory()
    nb = Newsbot(Settings(data_dir=args.data_dir or Path(tmp.name), reader="none"))
    if args.articles:
        print(nb.ingest([args.articles]).summary().split("\n")[0], file=sys.stderr)
    elif not args.data_dir:
        nb.ingest([ROOT / "samples"])
    questions = SAMPLE_QUESTIONS
    if args.questions:
        questions = [json.loads(x)["question"] for x in
                     args.questions.read_text().splitlines() if x.strip()][: args.limit]
    nb.warm()
    libs = [nb.settings.library]
    ranked_all = [(q, nb.rank(q, libs)) for q in questions]
    precisions = ["fp32", "int8"] + (["bf16"] if cpu_bf16() else [])
    print(f"{len(questions)} questions; CPU bf16 native: {cpu_bf16()}")
    print("| precision | candidates | median ms | p95 ms | vs fp32 | max abs Δp | top-1 "
          "changed |")
    print("|---|---|---|---|---|---|---|")
    for n in (4, 6, 8):
        base_ms, base_p = None, None
        for prec in precisions:
            reader = Reader(args.reader or SHIPPED, precision=prec, candidates=n,
                            cache_dir=nb.model_cache).load()
            times, probs = [], []
            for q, ranked in ranked_all:
                head = list(ranked[:n])
                prev = nb.previous_sentences(head)
                saved = [(c.score, c.relevance) for c in head]
                best = None
                for _ in range(args.repeat):
                    for c, (sc, rel) in zip(head, saved, strict=True):
                        c.score, c.relevance = sc, rel
                    t = time.perf_counter()
                    out = reader.rerank(q, list(head), prev)
                    ms = (time.perf_counter() - t) * 1000
                    best = ms if best is None else min(best, ms)
                times.append(best)
                probs.append({(c.article_id, c.index): c.score for c in out})
                for c, (sc, rel) in zip(head, saved, strict=True):
                    c.score, c.relevance = sc, rel
            med = statistics.median(times)
            if prec == "fp32":
                base_ms, base_p = med, probs
            diffs = [abs(a[k] - b[k]) for a, b in zip(probs, base_p, strict=True) for k in a]
            changed = sum(max(a, key=a.get) != max(b, key=b.get)
                          for a, b in zip(probs, base_p, strict=True))
            print(f"| {prec} | {n} | {med:.0f} | {p95(times):.0f} | "
                  f"{base_ms / med:.2f}x | {max(diffs):.3f} | {changed}/{len(probs)} |",
                  flush=True)
    nb.close()


if __name__ == "__main__":
    main()
