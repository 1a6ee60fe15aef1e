"""Re-ingesting stored articles after a splitter change: the cost with the stored sentence
vectors reused (the default) against embedding every sentence again.

Ingests N RealTime QA dev articles into a temp store, then, for each repeat and interleaved,
re-ingests them under a bumped SPLITTER_VERSION (every article counts as updated) once with
reuse and once without (``Newsbot._stored_sentence_vectors`` emptied, so every sentence is
embedded, as before the reuse). Prints the median seconds of each and their ratio. Usage:

    .venv/bin/python benchmarks/bench_reingest.py [--articles N] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from common import RTQA_ARTICLES, need_shared, records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--articles", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    need_shared()

    import retrieval.models
    from newsbot.settings import Settings
    from retrieval.service import Newsbot

    with tempfile.TemporaryDirectory(prefix="newsbot-reingest-") as tmp:
        source = Path(tmp) / "articles.jsonl"
        source.write_text("".join(json.dumps(r) + "\n"
                                  for r in records(RTQA_ARTICLES, args.articles)))
        nb = Newsbot(Settings(data_dir=Path(tmp) / "data"))
        first = nb.ingest([source])
        print(f"{first.added} articles, {first.sentences:,} sentences: first ingest "
              f"{first.seconds:.1f} s", flush=True)
        reuse = nb._stored_sentence_vectors
        times: dict[str, list[float]] = {"reused": [], "all embedded": []}
        version = retrieval.models.SPLITTER_VERSION
        for _ in range(args.repeats):
            for how in times:
                version += 1
                retrieval.models.SPLITTER_VERSION = version
                nb._stored_sentence_vectors = (reuse if how == "reused"
                                               else lambda library, ids: {})
                t = time.perf_counter()
                report = nb.ingest([source])
                times[how].append(time.perf_counter() - t)
                assert report.updated == first.added, report.summary()
                print(f"  {how}: {times[how][-1]:.1f} s", flush=True)
        med = {how: statistics.median(ts) for how, ts in times.items()}
        for how, m in med.items():
            print(f"re-ingest after a splitter change, {how}: median {m:.1f} s")
        print(f"ratio: {med['all embedded'] / med['reused']:.2f}x")


if __name__ == "__main__":
    main()
