"""Compare citation-scoring variants on the RealTime QA dev questions (extractive, no LLM).

For each variant it prints supported@1 and supported@3 (a gold answer inside the first cited
sentence, or one of the first three) and how many questions abstain at the current threshold.
A stopgap until `newsbot eval` (issue 4). Usage:

    .venv/bin/python benchmarks/tune_citations.py [--work DIR] [--limit N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import bot, need_shared, questions

VARIANTS = {
    "default": {},
    "no context": {"CONTEXT_SHARE": 0.0},
    "context 0.5": {"CONTEXT_SHARE": 0.5},
    "dense-heavy": {"DENSE_WEIGHT": 0.7, "LEXICAL_WEIGHT": 0.3},
    "lexical-heavy": {"DENSE_WEIGHT": 0.4, "LEXICAL_WEIGHT": 0.6},
    "no type bonus": {"TYPE_BONUS": {"quantity": 0.0, "when": 0.0, "who": 0.0}},
}


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def main() -> None:
    import retrieval.cite as cite

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/newsbot-bench"))
    p.add_argument("--limit", type=int, default=0)
    args = p.parse_args()
    need_shared()
    nb = bot(args.work / "rtqa")
    nb.warm()
    qs = questions()[: args.limit or None]
    base = {k: getattr(cite, k) for k in ("DENSE_WEIGHT", "LEXICAL_WEIGHT", "CONTEXT_SHARE",
                                          "TYPE_BONUS", "FOLLOW_MARGIN")}
    print(f"{len(qs)} questions, threshold {nb.settings.abstain_below}")
    print(f"{'variant':<16} sup@1  sup@3  abstain")
    for name, overrides in VARIANTS.items():
        for k, v in {**base, **overrides}.items():
            setattr(cite, k, v)
        s1 = s3 = abst = 0
        for q in qs:
            a = nb.ask(q["question"])
            golds = [norm(g) for g in q["answers"]]
            quotes = [norm(c.quote) for c in a.citations]
            s1 += any(g in quote for g in golds for quote in quotes[:1])
            s3 += any(g in quote for g in golds for quote in quotes[:3])
            abst += a.abstained
        n = len(qs)
        print(f"{name:<16} {s1 / n:.3f}  {s3 / n:.3f}  {abst / n:.3f}")
    nb.close()


if __name__ == "__main__":
    main()
