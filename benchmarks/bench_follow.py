"""Standing questions: the cost of checking N of them against M new articles (issue 14's target:
1,000 questions against 100 new articles in under 5 s on 2 cores).

    .venv/bin/python benchmarks/bench_follow.py [--questions 1000] [--articles 100] [--repeats 3]

Questions are RealTime QA train questions (then dev ones, to reach N), articles the first M
RealTime QA dev articles, so most checks find nothing, as most standing questions do on most
days. Times one whole scan (`check_follows`: find the new articles, rank their passages per
question, score the sentences) after the articles are stored; storing them (embedding) is not
counted, since any ingest pays that. A benchmark prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import SHARED, bot, median, need_shared, records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=1000)
    ap.add_argument("--articles", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    need_shared()

    import numpy as np

    from retrieval.follow import FollowStore, check_follows, now_iso
    from retrieval.ingest import from_record

    qs = [json.loads(x)["question"] for split in ("train", "dev") for x in
          (SHARED / f"realtimeqa-{split}" / "questions.jsonl").read_text().splitlines() if x]
    qs = list(dict.fromkeys(qs))[: args.questions]
    arts = records(SHARED / "realtimeqa-dev" / "articles.jsonl.gz", args.articles)
    with tempfile.TemporaryDirectory() as tmp:
        nb = bot(Path(tmp) / "data", follow_max_per_server=max(1000, len(qs)))
        store = FollowStore(nb.data_dir / "follows.sqlite3")
        t = time.perf_counter()
        vecs = nb.embedder.embed([nb.check_question(q) for q in qs])
        for q, v in zip(qs, vecs, strict=True):
            store.add(nb.check_question(q), v, ["global"], "1", "10", "7", len(qs))
        print(f"{len(qs)} standing questions added in {time.perf_counter() - t:.1f} s")
        time.sleep(1.1)  # the articles arrive after the questions
        t = time.perf_counter()
        report = nb.ingest_articles([from_record(r, r["id"]) for r in arts])
        print(f"{report.added} new articles ({report.sentences} sentences) stored in "
              f"{time.perf_counter() - t:.1f} s (not counted below)")
        (watermark,) = store.db.execute("SELECT watermark FROM scans").fetchone()
        times, hits = [], []
        for _ in range(args.repeats):
            store.db.execute("DELETE FROM scanned")
            store.db.execute("UPDATE scans SET watermark=?", (watermark,))
            store.db.execute("UPDATE follows SET last_answer='', last_posted=''")
            t = time.perf_counter()
            hits = check_follows(nb, store, "discord")
            times.append(time.perf_counter() - t)
        print(f"check {len(qs)} questions x {report.added} new articles: median "
              f"{median(times):.2f} s (runs: {', '.join(f'{x:.2f}' for x in times)}); "
              f"target < 5 s")
        print(f"{len(hits)} questions answered (score >= {nb.settings.follow_min_score}); "
              f"median score of those {np.median([h.score for h in hits]) if hits else 0:.3f}")
        print(f"scan finished at {now_iso()}")
        store.close()
        nb.close()


if __name__ == "__main__":
    main()
