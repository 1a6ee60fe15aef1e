"""Helpers shared by the benchmark scripts: data paths, stores, medians, peak RSS."""

from __future__ import annotations

import gzip
import json
import resource
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
RTQA_ARTICLES = SHARED / "realtimeqa-dev" / "articles.jsonl.gz"
RTQA_QUESTIONS = SHARED / "realtimeqa-dev" / "questions.jsonl"


def need_shared() -> None:
    if not RTQA_ARTICLES.exists():
        sys.exit(f"benchmark data not found at {SHARED} (it exists on developer and CI machines)")


def need_store(data_dir: Path, libraries: list[str]) -> None:
    """One line and exit when the store a benchmark reads is missing or holds nothing there:
    timing questions against an empty store measures nothing."""
    import sqlite3

    catalog = data_dir / "catalog.sqlite3"
    hint = "build it with the eval command in docs/quality.md, or pass --store DIR"
    if not catalog.is_file():
        sys.exit(f"no store at {data_dir}: {hint}")
    try:
        db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
        try:
            counts = dict(db.execute(
                "SELECT library, COUNT(*) FROM articles WHERE status='ready' GROUP BY library"))
        finally:
            db.close()
    except sqlite3.Error as e:
        sys.exit(f"cannot read the store at {data_dir}: {e}")
    empty = [lib for lib in libraries if not counts.get(lib)]
    if empty:
        sys.exit(f"the store at {data_dir} holds no articles in library {', '.join(empty)}: "
                 f"{hint}")


def records(path: Path, limit: int | None = None) -> list[dict]:
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line))
            if limit and len(out) == limit:
                break
    return out


def questions() -> list[dict]:
    return [json.loads(x) for x in RTQA_QUESTIONS.read_text().splitlines() if x.strip()]


def bot(data_dir: Path, **overrides):
    from newsbot.settings import Settings
    from retrieval.service import Newsbot

    return Newsbot(Settings(data_dir=data_dir, **overrides))


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so
    a process started by a big parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
