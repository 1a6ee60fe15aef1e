"""Calibrate the abstention threshold (NEWSBOT_ABSTAIN_BELOW) on real questions.

For each RealTime QA dev question, the best sentence score is taken twice: against a store of
its own articles (the answer is there) and against a store of BBC articles only (it is not).
A good threshold keeps the first above it and the second below it. Usage:

    .venv/bin/python benchmarks/calibrate_abstention.py [--work DIR]

It builds (or reuses) DIR/rtqa and DIR/bbc; see bench_core.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import BBC_ARTICLES, RTQA_ARTICLES, bot, ingest_records, need_shared, pct, questions


def best_scores(data_dir: Path, source: Path) -> tuple[list[float], list[bool]]:
    nb = bot(data_dir)
    ingest_records(nb, source)
    best, supported = [], []
    for q in questions():
        answer = nb.ask(q["question"])
        best.append(answer.score)
        top = answer.citations[0].quote.lower() if answer.citations else ""
        supported.append(any(" ".join(a.lower().split()) in " ".join(top.split())
                             for a in q["answers"]))
    nb.close()
    return best, supported


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/newsbot-bench"))
    args = p.parse_args()
    need_shared()
    own, supported = best_scores(args.work / "rtqa", RTQA_ARTICLES)
    bbc, _ = best_scores(args.work / "bbc", BBC_ARTICLES)
    n = len(own)
    print(f"{n} questions; best sentence score per question")
    for name, xs in (("own articles", own), ("BBC only", bbc)):
        print(f"  {name:<13} p5 {pct(xs, 5):.3f}  p10 {pct(xs, 10):.3f}  p50 {pct(xs, 50):.3f}"
              f"  p90 {pct(xs, 90):.3f}  p95 {pct(xs, 95):.3f}")
    print(f"  supported@1 at no threshold: {sum(supported) / n:.2f}")
    print(" threshold  abstain(own)  abstain(BBC)  supported@1 kept")
    for t in [x / 100 for x in range(30, 71, 2)]:
        a_own = sum(s < t for s in own) / n
        a_bbc = sum(s < t for s in bbc) / n
        kept = sum(ok and s >= t for ok, s in zip(supported, own, strict=True)) / n
        print(f"   {t:.2f}       {a_own:5.1%}        {a_bbc:5.1%}        {kept:.2f}")


if __name__ == "__main__":
    main()
