"""BM25 after a small ingest: a segment of the new articles against a full rebuild (issue 13:
10 new articles into a 100k store should cost under 2 s of BM25, against ~50 s rebuilt).

    .venv/bin/python benchmarks/bench_bm25.py [--articles 10000] [--new 10] [--repeats 3]

Writes a catalog of N articles (RealTime QA and BBC texts, reused under new ids past their
count) without embedding them, since BM25 reads only the catalog; then times, per round, the
refresh after storing 10 new articles, a full rebuild beside it, and BM25 query latency on the
segmented and on the merged index. A benchmark prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import re
import tempfile
import time
from pathlib import Path

from common import SHARED, median, need_shared, pct, questions


def texts():
    for path in (SHARED / "realtimeqa-dev" / "articles.jsonl.gz",
                 SHARED / "realtimeqa-train" / "articles.jsonl.gz",
                 SHARED / "bbc" / "articles.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


def sentences(article_id: str, text: str):
    """Sentences cut at ". " (BM25 sees chunks; real splitting would dominate the set-up)."""
    from retrieval.models import Sentence

    out, start = [], 0
    for m in re.finditer(r"(?<=\.) +|$", text):
        if m.start() > start:
            out.append(Sentence(article_id, len(out), start, m.start(), text[start:m.start()]))
        start = m.end()
    return out


def write(catalog, records: list[dict], start: int) -> None:
    from retrieval.ingest import from_record
    from retrieval.split import make_chunks

    items = []
    for i, r in enumerate(records):
        a = from_record({**r, "url": f"https://example.org/{start + i}"}, "bench")
        a.id = f"a{start + i}"
        sents = sentences(a.id, a.text)
        if sents:
            items.append((a, sents, make_chunks(a.id, a.text, sents, 5, 2)))
    catalog.write_pending("global", items)
    catalog.mark_ready("global", [a.id for a, _, _ in items])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=10_000)
    ap.add_argument("--new", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    need_shared()

    from retrieval import lexical
    from retrieval.catalog import Catalog

    source = itertools.cycle(list(itertools.islice(texts(), args.articles + 100)))
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(Path(tmp) / "catalog.sqlite3")
        t = time.perf_counter()
        for at in range(0, args.articles, 500):
            write(catalog, [next(source) for _ in range(min(500, args.articles - at))], at)
        print(f"catalog of {args.articles:,} articles written in {time.perf_counter() - t:.0f} s",
              flush=True)
        index = lexical.LexicalIndex(catalog, Path(tmp) / "bm25")
        t = time.perf_counter()
        idx = index.refresh()
        print(f"first build: {time.perf_counter() - t:.1f} s, {idx.num_docs:,} chunks")
        qs = [q["question"] for q in questions()][:200]

        def latency() -> tuple[float, float]:
            ms = []
            for q in qs:
                t = time.perf_counter()
                index.search(q, 40, ["global"])
                ms.append((time.perf_counter() - t) * 1000)
            return median(ms), pct(ms, 95)

        merged = latency()
        seg_s, full_s = [], []
        beside = lexical.LexicalIndex(catalog, Path(tmp) / "bm25-full")
        at = args.articles
        for _ in range(args.repeats):
            write(catalog, [next(source) for _ in range(args.new)], at)
            at += args.new
            t = time.perf_counter()
            idx = index.refresh()
            seg_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            beside._publish(beside._build())  # what every ingest paid before segments
            full_s.append(time.perf_counter() - t)
        segmented = latency()
        print(f"BM25 after a {args.new}-article ingest into {args.articles:,}: segment "
              f"{median(seg_s):.2f} s (runs: {', '.join(f'{x:.2f}' for x in seg_s)}); full "
              f"rebuild {median(full_s):.2f} s; ratio {median(full_s) / median(seg_s):.0f}x")
        print(f"BM25 query latency, 200 questions, top 40: one segment p50 {merged[0]:.1f} ms "
              f"p95 {merged[1]:.1f} ms; with {len(idx.segments) - 1} small segments p50 "
              f"{segmented[0]:.1f} ms p95 {segmented[1]:.1f} ms")
        catalog.close()


if __name__ == "__main__":
    main()
