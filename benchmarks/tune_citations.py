"""Compare citation-scoring variants on the RealTime QA dev questions (extractive, no LLM).

Each variant overrides constants of retrieval/cite.py and is judged exactly as `newsbot eval`
judges (retrieval.evaluate), on the store that `newsbot eval` built. Usage:

    .venv/bin/python benchmarks/tune_citations.py [--store DIR] [--limit N] [--only NAME...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import RTQA_QUESTIONS, bot, need_shared

VARIANTS: dict[str, dict] = {
    "default": {},
    "ctx 0.3 all terms": {"CONTEXT_SHARE": 0.3, "CONTEXT_NAMES_ONLY": False},
    "ctx 0.5 names": {"CONTEXT_SHARE": 0.5},
    "ctx 1.0 names": {"CONTEXT_SHARE": 1.0},
    "dense-heavy": {"DENSE_WEIGHT": 0.7, "LEXICAL_WEIGHT": 0.3},
    "lexical-heavy": {"DENSE_WEIGHT": 0.4, "LEXICAL_WEIGHT": 0.6},
}


def main() -> None:
    import retrieval.cite as cite
    from retrieval import evaluate as ev

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", type=Path, default=Path("/tmp/newsbot-eval"))
    p.add_argument("--library", default="global")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--only", nargs="*")
    args = p.parse_args()
    need_shared()
    nb = bot(args.store)
    nb.warm()
    qs = ev.load_questions(RTQA_QUESTIONS)[: args.limit or None]
    names = list(cite.__dict__)
    base = {k: getattr(cite, k) for k in names if k.isupper()}
    print(f"{len(qs)} questions, threshold {nb.settings.abstain_below}")
    for name, overrides in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        for k, v in {**base, **overrides}.items():
            setattr(cite, k, v)
        m = ev.metrics(ev.run(nb, qs, [args.library]))
        print(f"{name:<16} sup@1 {m.supported_at_1:.3f}  sup@3 {m.supported_at_3:.3f}  "
              f"rec@10 {m.recall[10]:.3f}  abstain {m.abstention:.3f}  "
              f"p95 {m.latency_p95_ms:.0f} ms", flush=True)
    nb.close()


if __name__ == "__main__":
    main()
