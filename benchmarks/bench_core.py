"""Core benchmark: ingest throughput against raw encoding, query latency, peak RSS, cold start.

Prints figures; it asserts nothing (timings on a shared 2-core machine are noisy: read the
medians and ratios). Usage:

    .venv/bin/python benchmarks/bench_core.py [--store DIR] [--articles N] [--repeats R]

Query latency is measured on the store that `newsbot eval` builds (README, "Answer quality"):
the RealTime QA dev articles in library `global`, the BBC articles in `global-negative`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    ROOT,
    RTQA_ARTICLES,
    bot,
    median,
    need_shared,
    pct,
    peak_rss_mb,
    questions,
    records,
)


def bench_ingest(n_articles: int, repeats: int) -> None:
    from retrieval.ingest import from_record
    from retrieval.split import split_sentences

    sample = [from_record(r, "bench") for r in records(RTQA_ARTICLES, n_articles)]
    sentences = [s.text for a in sample for s in split_sentences(a.id, a.text, a.body_start)]
    nb0 = bot(Path(tempfile.mkdtemp()))
    embedder = nb0.embedder
    embedder.embed(sentences[:64])  # warm up
    raw, full = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        embedder.embed(sentences)
        raw.append(time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as d:
            nb = bot(Path(d))
            nb.__dict__["embedder"] = embedder
            t = time.perf_counter()
            report = nb.ingest_articles(iter(sample))
            full.append(time.perf_counter() - t)
            assert report.added == len(sample) and report.sentences == len(sentences)
            nb.close()
    r, f = median(raw), median(full)
    print(f"ingest: {len(sample)} articles, {len(sentences)} sentences, device {embedder.device},"
          f" median of {repeats}")
    print(f"  raw encode      {len(sentences) / r:8.1f} sentences/s")
    print(f"  full ingest     {len(sentences) / f:8.1f} sentences/s  "
          f"{len(sample) / f:6.2f} articles/s")
    print(f"  pipeline overhead {100 * (f / r - 1):5.1f}% of raw encode time "
          f"(target <= 25%)")


def bench_queries(data_dir: Path, label: str, libraries: list[str]) -> None:
    nb = bot(data_dir)
    nb.warm()
    qs = questions()
    for q in qs[:5]:
        nb.ask(q["question"], libraries=libraries)
    times = []
    for q in qs:
        t = time.perf_counter()
        nb.ask(q["question"], libraries=libraries)
        times.append((time.perf_counter() - t) * 1000)
    counts = nb.catalog.counts(libraries)
    print(f"query latency, {label}: {counts['articles']} articles, {counts['sentences']} "
          f"sentences, {len(times)} questions, warm")
    print(f"  p50 {pct(times, 50):6.1f} ms   p95 {pct(times, 95):6.1f} ms   (target p95 <= 100 ms)")
    nb.close()


def cold_start(data_dir: Path) -> None:
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "newsbot", "--data-dir", str(data_dir), "ask",
                        "--json", "who won the Tour de France?"], check=True, cwd=ROOT,
                       capture_output=True)
        runs.append(time.perf_counter() - t)
    print(f"cold start of `newsbot ask` (one question, new process): median "
          f"{median(runs):.2f} s of 3")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", type=Path, default=Path("/tmp/newsbot-eval"),
                   help="data dir built by `newsbot eval` (see README)")
    p.add_argument("--articles", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-ingest", action="store_true")
    args = p.parse_args()
    need_shared()
    if not args.skip_ingest:
        bench_ingest(args.articles, args.repeats)
    bench_queries(args.store, "RealTime QA dev articles", ["global"])
    bench_queries(args.store, "RealTime QA + BBC articles", ["global", "global-negative"])
    print(f"peak RSS of this process: {peak_rss_mb():.0f} MB")
    cold_start(args.store)


if __name__ == "__main__":
    main()
