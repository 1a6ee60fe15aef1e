"""Ingest's pipeline: sentence splitting runs in worker processes, batches ahead of the
encoder, so that neither waits for the other (pysbd is pure Python: ~1,000 sentences/s per
core, about a fifth of an ingest's time once encoding runs in int8, and far below a GPU's
encoding rate).

Only the splitting moves: every catalog and vector write stays in the ingesting process, in
its transactions, so crash safety is what it was. A worker that dies is replaced by splitting
in the calling process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from retrieval.models import Article, Chunk, Sentence

log = logging.getLogger(__name__)

# Sentences and chunks, and whether the article was over the per-article caps (then only its
# first sentences, as far as the last chunk reaches, are kept).
Split = tuple[list[Sentence], list[Chunk], bool]
SplitKey = tuple[str, str]  # article id, content hash


def split_article(article_id: str, text: str, body_start: int, max_chars: int,
                  chunk_sentences: int, chunk_overlap: int, max_sentences: int | None = None,
                  max_chunks: int | None = None) -> Split:
    from retrieval.split import make_chunks, split_sentences

    # One sentence past the cap tells that the article goes on.
    sentences = split_sentences(article_id, text, body_start, max_chars,
                                limit=max_sentences + 1 if max_sentences else None)
    capped = max_sentences is not None and len(sentences) > max_sentences
    if capped:
        sentences = sentences[:max_sentences]
    chunks = (make_chunks(article_id, text, sentences, chunk_sentences, chunk_overlap,
                          max_chunks) if sentences else [])
    if chunks and chunks[-1].last_sentence < len(sentences) - 1:  # the chunk cap cut it
        capped = True
        sentences = sentences[: chunks[-1].last_sentence + 1]
    return sentences, chunks, capped


def _split_batch(items: list[tuple[SplitKey, str, int]], max_chars: int, chunk_sentences: int,
                 chunk_overlap: int, max_sentences: int | None = None,
                 max_chunks: int | None = None) -> dict[SplitKey, Split]:
    return {key: split_article(key[0], text, body_start, max_chars, chunk_sentences,
                               chunk_overlap, max_sentences, max_chunks)
            for key, text, body_start in items}


_GUARD = re.compile(r"""__name__\s*==\s*["']__main__["']""")


def main_is_importable() -> bool:
    """Whether worker processes may start. A spawned worker imports the program's main
    script again; without an ``if __name__ == "__main__"`` guard that would run a user's
    script a second time (its prints, its other work) in each worker, so such a program
    splits in process instead (measured as fast on a CPU encoder)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name.endswith("__main__"):
        return True  # `python -m package`: multiprocessing never re-runs those
    path = getattr(main, "__file__", None)
    if not path:
        return True  # interactive or -c: nothing to re-run
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return bool(_GUARD.search(f.read(1_000_000)))
    except OSError:
        return False


def _exit_with_parent() -> None:
    """A worker outlives a SIGKILLed parent otherwise (its queue's pipe stays open in the
    worker itself), so it watches for the parent to go."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


class SplitAhead:
    """Worker processes that split the next batches (one each) while this process encodes the
    current one. ``get`` returns what was split, or {} if a worker failed (the caller splits)."""

    def __init__(self, max_chars: int, chunk_sentences: int, chunk_overlap: int,
                 workers: int = 1, max_sentences: int | None = None,
                 max_chunks: int | None = None) -> None:
        self.params = (max_chars, chunk_sentences, chunk_overlap, max_sentences, max_chunks)
        self.workers = max(1, workers)
        # spawn, not fork: forking a process whose torch/ONNX threads are running can deadlock.
        self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_exit_with_parent)

    def submit(self, articles: list[tuple[SplitKey, Article]]) -> Future | None:
        if self._pool is None or not articles:
            return None
        items = [(key, a.text, a.body_start) for key, a in articles]
        try:
            return self._pool.submit(_split_batch, items, *self.params)
        except (BrokenProcessPool, RuntimeError):
            self._broken()
            return None

    def get(self, future: Future | None) -> dict[SplitKey, Split]:
        if future is None:
            return {}
        try:
            return future.result()
        except Exception:  # any failure of the worker means: split here
            log.warning("the sentence-splitting worker failed; splitting in this process",
                        exc_info=True)
            self._broken()
            return {}

    def _broken(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
