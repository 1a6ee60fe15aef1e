"""How a reader reorders the candidates the real pipeline gives it, without a full eval run.

    .venv/bin/python benchmarks/rerank_pipeline.py --data-dir /tmp/newsbot-eval \\
        --questions ../shared/data/realtimeqa-dev/questions.jsonl [--reader DIR] [-n 12]

Ranks each question's candidate sentences as `newsbot eval`'s answers do (dated as of the
question, hand-set scorer; `Newsbot.rank`), and prints how often one holding a gold answer
comes first and in the top 3: in the scorer's order, and, with --reader, in the reader's order
(its logit alone, and its stack) over the scorer's top N. Also how often the top N hold an
answer at all, the ceiling for any reranker. The store must already hold the questions'
articles (`newsbot eval ... --articles` or `newsbot ingest` puts them there). A benchmark
prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import need_store

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--questions", type=Path, required=True)
    ap.add_argument("--library", default="global")
    ap.add_argument("--reader", help="a reader directory (newsbot train-reader --out)")
    ap.add_argument("-n", type=int, default=12, help="candidates the reader re-reads")
    ap.add_argument("--precision", default="fp32", help="the reader's (auto, fp32, int8, ...)")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--dump", type=Path, metavar="FILE",
                    help="also write each question's top N candidates (text, title, sentence "
                         "before, heuristic score, holds an answer) as JSON, the input of "
                         "benchmarks/reader_sweep.py")
    args = ap.parse_args()

    import numpy as np

    from newsbot.settings import load_settings
    from retrieval.evaluate import holds, load_questions
    from retrieval.read import Reader, candidate_pairs
    from retrieval.service import Newsbot

    need_store(args.data_dir, [args.library])
    nb = Newsbot(load_settings(None, data_dir=args.data_dir, reader="none"))
    reader = Reader(args.reader, "cpu", precision=args.precision,
                    cache_dir=nb.model_cache).load() if args.reader else None
    orders: dict[str, list[list[bool]]] = {"scorer": [], "reader logit": [], "reader stack": []}
    ceiling = []
    dumped: list[dict] = []
    for q in load_questions(args.questions)[: args.limit]:
        head = nb.rank(q.question, [args.library], as_of=q.question_date)[: args.n]
        hold = [holds(c.quote, q.answers) for c in head]
        orders["scorer"].append(hold)
        ceiling.append(any(hold))
        prev = nb.previous_sentences(head) if head and (reader or args.dump) else {}
        if args.dump:
            dumped.append({"id": q.id, "question": q.question, "answers": q.answers, "cands": [
                {"text": c.quote, "title": c.passage.title, "heuristic": c.relevance,
                 "previous": prev.get((c.library, c.article_id, c.index), ""), "holds": h}
                for c, h in zip(head, hold, strict=True)]})
        if reader is None or not head:
            continue
        logits = reader.logits(q.question, candidate_pairs(head, prev))
        stack = [reader.order_key(float(lg), c.relevance, c.score - c.relevance)
                 for lg, c in zip(logits, head, strict=True)]
        for name, s in (("reader logit", logits), ("reader stack", np.asarray(stack))):
            orders[name].append([hold[i] for i in np.argsort(-s, kind="stable")])
    if args.dump:
        import json

        args.dump.write_text(json.dumps(dumped), encoding="utf-8")
    print(f"{len(ceiling)} questions; an answer among the scorer's top {args.n}: "
          f"{np.mean(ceiling):.3f}")
    for name, rows in orders.items():
        if rows:
            print(f"{name:>13}: first {np.mean([bool(r and r[0]) for r in rows]):.3f}  "
                  f"top 3 {np.mean([any(r[:3]) for r in rows]):.3f}")


if __name__ == "__main__":
    main()
