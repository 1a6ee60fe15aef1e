"""Core benchmark: ingest throughput against raw encoding, query latency, peak RSS, cold start.

Prints figures; it asserts nothing (timings on a shared 2-core machine are noisy: read the
medians and ratios). Usage:

    .venv/bin/python benchmarks/bench_core.py [--store DIR] [--articles N] [--repeats R] \
        [--precisions fp32,auto]

Each precision (NEWSBOT_PRECISION) is measured in the same run on the same articles: raw
encode and full ingest rates, cosine to the first precision's vectors, question encoding, and
query latency.

Query latency is measured on the store that `newsbot eval` builds (docs/quality.md):
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
    need_store,
    pct,
    peak_rss_mb,
    questions,
    records,
)


def bench_ingest(n_articles: int, repeats: int, precisions: list[str]) -> None:
    """Raw encode and full ingest for each precision, in one run on the same articles, with
    each precision's fidelity to fp32 and its question-encoding latency."""
    import numpy as np

    from retrieval.embed import Embedder
    from retrieval.ingest import from_record
    from retrieval.split import split_sentences

    sample = [from_record(r, "bench") for r in records(RTQA_ARTICLES, n_articles)]
    sentences = [s.text for a in sample for s in split_sentences(a.id, a.text, a.body_start)]
    qs = [q["question"] for q in questions()[:50]]
    cache = Path(tempfile.mkdtemp())
    print(f"ingest: {len(sample)} articles, {len(sentences)} sentences, median of {repeats}")
    print(f"  {'precision':9} {'raw encode/s':>12} {'ingest/s':>9} {'articles/s':>10} "
          f"{'overhead':>8} {'vs fp32':>8} {'cos median':>10} {'cos min':>8} {'query ms':>8}")
    ref, base = None, None
    # The last precision once more with the whole sample in one batch, which is split in
    # process: the pipeline's gain is the difference between those two rows.
    for setting, batch in [*((p, 64) for p in precisions), (precisions[-1], 10**4)]:
        embedder = Embedder(precision=setting, cache_dir=cache).load()
        embedder.embed(sentences[:64])  # warm up
        raw, full = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            vecs = embedder.embed(sentences)
            raw.append(time.perf_counter() - t)
            with tempfile.TemporaryDirectory() as d:
                nb = bot(Path(d), ingest_batch=batch)
                nb.__dict__["embedder"] = embedder
                t = time.perf_counter()
                report = nb.ingest_articles(iter(sample))
                full.append(time.perf_counter() - t)
                assert report.added == len(sample) and report.sentences == len(sentences)
                nb.close()
        query = []
        for q in qs:
            t = time.perf_counter()
            embedder.embed_query(q)
            query.append((time.perf_counter() - t) * 1000)
        if ref is None:
            ref = vecs
        cos = (vecs * ref).sum(axis=1)
        r, f = median(raw), median(full)
        base = base or len(sentences) / f
        label = setting + "=" + embedder.precision + (" unpipelined" if batch > 64 else "")
        print(f"  {label:9} {len(sentences) / r:12.1f} "
              f"{len(sentences) / f:9.1f} {len(sample) / f:10.2f} {100 * (f / r - 1):7.1f}% "
              f"{len(sentences) / f / base:7.2f}x {np.median(cos):10.4f} {cos.min():8.4f} "
              f"{median(query):8.1f}")
    print("  (overhead: full ingest time over raw encode time, target <= 25%; vs fp32: ingest "
          "rate over the first row's; cosines to the first row's vectors; unpipelined: one "
          "batch, split in this process)")
    bf16_reference(sentences, repeats, ref)


def bf16_reference(sentences: list[str], repeats: int, ref) -> None:
    """Raw bf16 encoding with sentence-transformers, where the CPU computes bf16 natively: not
    an embedding precision newsbot offers (docs/precision.md), measured so that the choice
    stays checked on each kind of CPU."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from retrieval.embed import default_model_path
    from retrieval.precision import cpu_bf16

    if not cpu_bf16():
        print("bf16 reference: this CPU has no native bf16 (AMX or avx512_bf16); skipped")
        return
    model = SentenceTransformer(default_model_path(), device="cpu",
                                model_kwargs={"dtype": torch.bfloat16})
    model.encode(sentences[:64], batch_size=64)  # warm up
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        vecs = model.encode(sentences, batch_size=64, convert_to_numpy=True).astype(np.float32)
        runs.append(time.perf_counter() - t)
    vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    cos = (vecs * ref).sum(axis=1)
    print(f"bf16 reference (torch, not offered): raw encode {len(sentences) / median(runs):.1f} "
          f"sentences/s, cosine to the first row median {np.median(cos):.4f}")


class InstantEmbedder:
    """Stands in for an encoder far faster than splitting (a GPU's): unit vectors at once."""

    device = "cuda (stand-in)"
    precision = "fp32"
    dim = 384

    def embed(self, texts: list[str]):
        import numpy as np

        v = np.ones((len(texts), self.dim), dtype=np.float32)
        return v / np.sqrt(self.dim)


def bench_split_capacity(n_articles: int, repeats: int) -> None:
    """Ingest rate when encoding costs nothing, so splitting and writing are all that is
    left: in process (one batch), then with 1 and 2 worker processes splitting ahead."""
    from retrieval.ingest import from_record

    sample = [from_record(r, "bench") for r in records(RTQA_ARTICLES, n_articles)]
    print(f"pipeline capacity with an instant encoder: {len(sample)} articles, median of "
          f"{repeats}")
    for label, batch, workers in (("split in process", 10**4, 1), ("1 worker", 16, 1),
                                  ("2 workers", 16, 2)):
        runs, n = [], 0
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as d:
                nb = bot(Path(d), ingest_batch=batch)
                nb.__dict__["embedder"] = InstantEmbedder()
                nb.__dict__["split_workers"] = workers
                t = time.perf_counter()
                n = nb.ingest_articles(iter(sample)).sentences
                runs.append(time.perf_counter() - t)
                nb.close()
        print(f"  {label:17} {n / median(runs):8.1f} sentences/s")


def bench_queries(data_dir: Path, label: str, libraries: list[str], precision: str) -> None:
    nb = bot(data_dir, precision=precision)
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
    print(f"query latency, {label}, precision {precision}={nb.embedder.precision}: "
          f"{counts['articles']} articles, {counts['sentences']} sentences, {len(times)} "
          "questions, warm")
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
                   help="data dir built by `newsbot eval` (see docs/quality.md)")
    p.add_argument("--articles", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-ingest", action="store_true")
    p.add_argument("--precisions", default="fp32,auto",
                   help="comma-separated NEWSBOT_PRECISION values to compare; the first is "
                   "the fidelity reference")
    args = p.parse_args()
    need_shared()
    need_store(args.store, ["global", "global-negative"])
    if not args.skip_ingest:
        bench_ingest(args.articles, args.repeats, args.precisions.split(","))
        bench_split_capacity(3 * args.articles, args.repeats)
    for precision in args.precisions.split(","):
        bench_queries(args.store, "RealTime QA dev articles", ["global"], precision)
        bench_queries(args.store, "RealTime QA + BBC articles", ["global", "global-negative"],
                      precision)
    print(f"peak RSS of this process: {peak_rss_mb():.0f} MB")
    cold_start(args.store)


if __name__ == "__main__":
    main()
