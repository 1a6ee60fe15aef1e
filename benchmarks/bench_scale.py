"""Scale benchmark: ingest throughput on real text (embedded and server mode), then query
latency, disk size and peak RSS at growing article counts. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_scale.py ingest [--articles N]
    .venv/bin/python benchmarks/bench_scale.py scale --points 10000 50000 100000 [--work DIR]

`ingest` embeds real RealTime QA articles (on CUDA when present). `scale` builds synthetic
stores from real ones, without the model: each synthetic article is a copy of one of the first
1,000 RealTime QA articles of the store `newsbot eval` built (docs/quality.md), under a
new id, with that article's real sentence vectors plus Gaussian noise (sigma 0.02 per
dimension, renormalised: cosine ~0.93 to the original), and chunk vectors recomputed from
them. The store is built through a Chroma server (`chroma run`), then measured twice on the same
files: with the server holding the index (the measuring process is the bot's side: catalog,
BM25, model) and embedded (one process holds everything). Each measurement is a fresh process
that asks 60 real dev questions after one warm-up pass: p50/p95 of `ask`, its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
)

EVAL_STORE = Path("/tmp/newsbot-eval")
TEMPLATES = 1000


def _du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def _chroma(path: Path, port: int) -> subprocess.Popen:
    import urllib.request

    proc = subprocess.Popen([str(Path(sys.executable).parent / "chroma"), "run", "--path",
                             str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    raise SystemExit("chroma run did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cmd_ingest(n: int) -> None:
    from common import records

    from retrieval.ingest import from_record

    articles = [from_record(r, "bench") for r in records(RTQA_ARTICLES, n)]
    for mode in ("embedded", "server"):
        tmp = Path(tempfile.mkdtemp())
        proc, extra = None, {}
        if mode == "server":
            port = _free_port()
            proc = _chroma(tmp / "server", port)
            extra = {"chroma_host": "127.0.0.1", "chroma_port": port}
        nb = bot(tmp / "data", **extra)
        nb.warm()
        started = time.perf_counter()
        report = nb.ingest_articles(articles)
        seconds = time.perf_counter() - started
        print(f"ingest {mode:<8} on {nb.embedder.device}: {report.added} articles, "
              f"{report.sentences} sentences in {seconds:.1f} s = "
              f"{report.added / seconds:.1f} articles/s, {report.sentences / seconds:.0f} "
              f"sentences/s", flush=True)
        nb.close()
        if proc:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def _templates():
    """(article, sentences, chunks, sentence vectors) of real stored articles."""
    import numpy as np

    src = bot(EVAL_STORE)
    ids = [r[0] for r in src.catalog.db.execute(
        "SELECT id FROM articles WHERE library='global' AND status='ready' ORDER BY id LIMIT ?",
        (TEMPLATES,))]
    out = []
    for aid in ids:
        article, sentences = src.catalog.load("global", aid)
        chunks = src.catalog.chunks_of("global", aid)
        keys = [("global", aid, s.index) for s in sentences]
        got = src.catalog.sentence_vectors(keys)
        got |= src.vectors.legacy_sentence_vectors([k for k in keys if k not in got])
        if len(got) != len(keys):
            continue
        out.append((article, sentences, chunks, np.stack([got[k] for k in keys])))
    src.close()
    return out


def _grow(nb, templates, start: int, stop: int) -> float:
    """Add synthetic articles start..stop-1; returns seconds spent (BM25 rebuild included)."""
    import dataclasses

    import numpy as np

    from retrieval.service import _chunk_vectors

    rng = np.random.default_rng(start)
    began = time.perf_counter()
    batch_size = 500
    for lo in range(start, stop, batch_size):
        items, vecs, chunk_rows = [], {}, []
        for i in range(lo, min(stop, lo + batch_size)):
            article, sentences, chunks, svecs = templates[i % len(templates)]
            copy = dataclasses.replace(article, id=f"syn{i:06d}")
            noisy = svecs + rng.normal(0, 0.02, svecs.shape).astype(np.float32)
            noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
            items.append((copy, sentences, chunks))
            vecs[copy.id] = noisy
            chunk_rows.append((copy, copy.content_hash(), chunks,
                               _chunk_vectors(noisy, chunks, np)))
        nb.catalog.write_pending("global", items)
        nb.vectors.add("global", chunk_rows)
        nb.catalog.mark_ready("global", list(vecs), vecs)
        print(f"  {min(stop, lo + batch_size):,} articles", end="\r", flush=True)
    t = time.perf_counter()
    nb.lexical.refresh()
    print(f"\nBM25 rebuilt in {time.perf_counter() - t:.0f} s", flush=True)
    return time.perf_counter() - began


def cmd_measure(data_dir: Path, port: int | None, n_questions: int) -> None:
    """One fresh process: warm up, then time `ask` on real questions."""
    extra = {"chroma_host": "127.0.0.1", "chroma_port": port} if port else {}
    nb = bot(data_dir, **extra)
    qs = [q["question"] for q in questions()][:n_questions]
    nb.warm()
    for q in qs[:10]:
        nb.ask(q)
    times, stages = [], {}
    for q in qs:
        t = time.perf_counter()
        answer = nb.ask(q)
        times.append((time.perf_counter() - t) * 1000)
        for stage, ms in answer.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
    print(json.dumps({"p50": median(times), "p95": pct(times, 95), "rss_mb": peak_rss_mb(),
                      "median_ms": {k: round(median(v), 1) for k, v in stages.items()
                                    if k != "total_ms"}}))


def cmd_scale(points: list[int], work: Path, n_questions: int) -> None:
    need_shared()
    need_store(EVAL_STORE, ["global"])
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    port = _free_port()
    server = _chroma(data / "chroma", port)
    templates = _templates()
    print(f"{len(templates)} template articles", flush=True)
    nb = bot(data, chroma_host="127.0.0.1", chroma_port=port)
    have = nb.catalog.counts(["global"])["articles"]
    try:
        for point in points:
            if have < point:
                seconds = _grow(nb, templates, have, point)
                print(f"\nbuilt {point - have:,} articles in {seconds:.0f} s", flush=True)
                have = point
            counts = nb.catalog.counts(["global"])
            row = {"articles": counts["articles"], "sentences": counts["sentences"],
                   "chunks": counts["chunks"]}
            me = [sys.executable, __file__, "measure", "--data-dir", str(data),
                  "--questions", str(n_questions)]
            got = subprocess.run([*me, "--port", str(port)], capture_output=True, text=True)
            row["server"] = json.loads(got.stdout.strip().splitlines()[-1])
            server.kill()
            server.wait()
            got = subprocess.run(me, capture_output=True, text=True)
            row["embedded"] = json.loads(got.stdout.strip().splitlines()[-1])
            row["disk_mb"] = {"catalog": _du_mb(data) - _du_mb(data / "chroma"),
                              "chroma": _du_mb(data / "chroma")}
            print(json.dumps(row), flush=True)
            server = _chroma(data / "chroma", port)
    finally:
        nb.close()
        server.kill()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("ingest")
    s.add_argument("--articles", type=int, default=200)
    s = sub.add_parser("scale")
    s.add_argument("--points", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    s.add_argument("--work", type=Path, default=Path("/tmp/newsbot-scale"))
    s.add_argument("--questions", type=int, default=60)
    s = sub.add_parser("measure")
    s.add_argument("--data-dir", type=Path, required=True)
    s.add_argument("--port", type=int)
    s.add_argument("--questions", type=int, default=60)
    args = p.parse_args()
    os.chdir(ROOT)
    if args.cmd == "ingest":
        need_shared()
        cmd_ingest(args.articles)
    elif args.cmd == "scale":
        cmd_scale(args.points, args.work, args.questions)
    else:
        cmd_measure(args.data_dir, args.port, args.questions)


if __name__ == "__main__":
    main()
