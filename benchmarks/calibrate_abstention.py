"""Calibrate the abstention threshold (NEWSBOT_ABSTAIN_BELOW) from a `newsbot eval` run.

`newsbot eval ... --negative-articles OTHER` answers every question twice: against its own
articles (the answer is there) and against other articles only (it is not). Each answer records
the best sentence score. A good threshold keeps the first above it and the second below it.

    .venv/bin/python benchmarks/calibrate_abstention.py EVAL_OUT_DIR [--config reader]

With the reader (config "reader") the score is its probability, and the threshold found is
NEWSBOT_READER_ABSTAIN_BELOW (or the reader's own "threshold"); with "heuristic" it is
NEWSBOT_ABSTAIN_BELOW.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import pct


def load(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--config", default="reader")
    p.add_argument("--from", dest="lo", type=float, default=0.30)
    p.add_argument("--to", dest="hi", type=float, default=0.75)
    args = p.parse_args()
    own = load(args.out / "questions" / f"{args.config}.jsonl")
    other = load(args.out / "questions" / f"{args.config}-negative.jsonl")
    s_own, s_other = [r["score"] for r in own], [r["score"] for r in other]
    n = len(own)
    print(f"{n} questions; best sentence score per question ({args.config})")
    for name, xs in (("own articles", s_own), ("other only", s_other)):
        print(f"  {name:<13} p5 {pct(xs, 5):.3f}  p10 {pct(xs, 10):.3f}  p50 {pct(xs, 50):.3f}"
              f"  p90 {pct(xs, 90):.3f}  p95 {pct(xs, 95):.3f}")
    print(" threshold  abstain(own)  abstain(other)  supported@1 kept  supported@3 kept")
    for t in [x / 100 for x in range(round(args.lo * 100), round(args.hi * 100) + 1)]:
        kept1 = sum(r["held_by"] == 1 and r["score"] >= t for r in own) / n
        kept3 = sum(r["held_by"] is not None and r["held_by"] <= 3 and r["score"] >= t
                    for r in own) / n
        print(f"   {t:.2f}       {sum(s < t for s in s_own) / n:6.1%}        "
              f"{sum(s < t for s in s_other) / n:6.1%}          {kept1:.3f}             "
              f"{kept3:.3f}")


if __name__ == "__main__":
    main()
