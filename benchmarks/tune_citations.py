"""Compare citation-scoring variants on the RealTime QA dev questions (extractive, no LLM).

Each variant overrides constants of retrieval/cite.py and is judged exactly as `newsbot eval`
judges (retrieval.evaluate), on the store that `newsbot eval` built. Usage:

    .venv/bin/python benchmarks/tune_citations.py [--store DIR] [--limit N] [--only NAME...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import RTQA_QUESTIONS, bot, need_shared, need_store

VARIANTS: dict[str, dict] = {
    "default": {},
    "ctx 0.3 all terms": {"CONTEXT_SHARE": 0.3, "CONTEXT_NAMES_ONLY": False},
    "ctx 0.5 names": {"CONTEXT_SHARE": 0.5},
    "dense-heavy": {"DENSE_WEIGHT": 0.7, "LEXICAL_WEIGHT": 0.3},
    "lexical-heavy": {"DENSE_WEIGHT": 0.4, "LEXICAL_WEIGHT": 0.6},
    "recency 0.05/7d": {"RECENCY_WEIGHT": 0.05, "RECENCY_DAYS": 7.0},
    "recency 0.10/7d": {"RECENCY_WEIGHT": 0.10, "RECENCY_DAYS": 7.0},
    "recency 0.10/14d": {"RECENCY_WEIGHT": 0.10, "RECENCY_DAYS": 14.0},
    "recency 0.20/7d": {"RECENCY_WEIGHT": 0.20, "RECENCY_DAYS": 7.0},
    "passage boost .002": {"search.RECENCY_BOOST": 0.002},
    "passage boost .005": {"search.RECENCY_BOOST": 0.005},
    "passage boost .01": {"search.RECENCY_BOOST": 0.01},
    "both .005 + .10/7d": {"search.RECENCY_BOOST": 0.005, "RECENCY_WEIGHT": 0.10},
    "both .01 + .20/7d": {"search.RECENCY_BOOST": 0.01, "RECENCY_WEIGHT": 0.20},
    "both .005 + .20/7d": {"search.RECENCY_BOOST": 0.005, "RECENCY_WEIGHT": 0.20},
    "both .005 + .10/7d k8": {"search.RECENCY_BOOST": 0.005, "RECENCY_WEIGHT": 0.10,
                              "top_k": 8},
    "both .005/3d + .10/3d": {"search.RECENCY_BOOST": 0.005, "RECENCY_WEIGHT": 0.10,
                              "search.RECENCY_DAYS": 3.0, "RECENCY_DAYS": 3.0},
    "both .01 + .20/7d k8": {"search.RECENCY_BOOST": 0.01, "RECENCY_WEIGHT": 0.20,
                             "top_k": 8},
    "both .01 + .20/7d k10": {"search.RECENCY_BOOST": 0.01, "RECENCY_WEIGHT": 0.20,
                              "top_k": 10},
    "both .005 + .15/7d k8": {"search.RECENCY_BOOST": 0.005, "RECENCY_WEIGHT": 0.15,
                              "top_k": 8},
    "dense share 0.7": {"search.DENSE_SHARE": 0.7, "top_k": 8},
    "dense share 0.5": {"search.DENSE_SHARE": 0.5, "top_k": 8},
    "dense share 0.3": {"search.DENSE_SHARE": 0.3, "top_k": 8},
    "dense share 0.4": {"search.DENSE_SHARE": 0.4, "top_k": 8},
    "steps: recency only": {"search.DENSE_SHARE": 1.0, "top_k": 5},
    "steps: + top_k 8": {"search.DENSE_SHARE": 1.0, "top_k": 8},
    # BM25's own constants (Lucene's defaults are k1 1.2, b 0.75; Anserini's 0.9, 0.4).
    **{f"bm25 k1 {k1} b {b}": {"lexical.K1": k1, "lexical.B": b}
       for k1, b in [(0.9, 0.4), (1.2, 0.75), (1.2, 0.5), (2.0, 0.75), (1.5, 0.9), (0.9, 0.5),
                     (1.2, 0.4), (1.2, 0.3), (1.0, 0.5), (1.5, 0.5)]},
    "rrf k 30": {"search.RRF_K": 30},
    "rrf k 100": {"search.RRF_K": 100},
    "dense share 0.2": {"search.DENSE_SHARE": 0.2},
    # Settings, not cite constants: how many passages are read for candidate sentences.
    "top_k 10": {"top_k": 10},
    "top_k 3": {"top_k": 3},
}


def main() -> None:
    import retrieval.cite as cite
    import retrieval.lexical as lexical
    import retrieval.search as search
    from retrieval import evaluate as ev

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", type=Path, default=Path("/tmp/newsbot-eval"))
    p.add_argument("--library", default="global")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--only", nargs="*")
    args = p.parse_args()
    need_shared()
    need_store(args.store, [args.library])
    nb = bot(args.store)
    nb.warm()
    qs = ev.load_questions(RTQA_QUESTIONS)[: args.limit or None]
    names = list(cite.__dict__)
    base = {k: getattr(cite, k) for k in names if k.isupper()}
    base_search = {k: getattr(search, k) for k in list(search.__dict__) if k.isupper()}
    base_bm25 = {"K1": lexical.K1, "B": lexical.B}
    print(f"{len(qs)} questions, threshold {nb.abstain_below}")
    for name, overrides in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        nb.settings.top_k = overrides.get("top_k", 8)
        for k, v in {**base, **overrides}.items():
            if k.isupper():
                setattr(cite, k, v)
        for k, v in base_search.items():
            setattr(search, k, overrides.get(f"search.{k}", v))
        bm25 = {k: overrides.get(f"lexical.{k}", v) for k, v in base_bm25.items()}
        if bm25 != {"K1": lexical.K1, "B": lexical.B}:
            for k, v in bm25.items():
                setattr(lexical, k, v)
            # Scores read K1 and B at query time; the saved index holds only counts.
            nb.lexical._index = nb.lexical._assemble(nb.lexical._build())
        m = ev.metrics(ev.run(nb, qs, [args.library]))
        print(f"{name:<16} sup@1 {m.supported_at_1:.3f}  sup@3 {m.supported_at_3:.3f}  "
              f"rec@5/10/20 {m.recall[5]:.3f}/{m.recall[10]:.3f}/{m.recall[20]:.3f}  "
              f"MRR {m.mrr:.3f}  abstain {m.abstention:.3f}  p95 {m.latency_p95_ms:.0f} ms",
              flush=True)
    nb.close()


if __name__ == "__main__":
    main()
