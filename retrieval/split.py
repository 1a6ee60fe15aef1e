"""Split article text into sentences with exact offsets, then into sentence-aligned chunks."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache

from retrieval.fragments import continues
from retrieval.models import Chunk, Sentence

# A paragraph is a run of text between line breaks; news text rarely wraps a sentence across lines,
# and splitting per paragraph keeps pysbd's cost linear in article length.
_PARAGRAPH = re.compile(r"[^\n]+")
_MIN_SENTENCE_CHARS = 2
# pysbd's cost grows with the square of a paragraph's length (0.7 s at 25k characters, 8.5 s at
# 100k), so longer paragraphs are first cut where a sentence plainly ends, or at a space.
MAX_PARAGRAPH_CHARS = 2_000
_PLAIN_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'\u201d\u2019)]))\s+"
                        r"(?=[\"'\u201c\u2018(]?[A-Z0-9])")


@lru_cache(maxsize=1)
def _segmenter():  # pysbd is slow to build; one per process
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


@lru_cache(maxsize=4)
def _long_splitter(max_chars: int):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    # Clause-level separators: an over-long "sentence" is usually a list or a table row.
    return RecursiveCharacterTextSplitter(
        chunk_size=max_chars,
        chunk_overlap=0,
        separators=["; ", ", ", " ", ""],
        keep_separator="end",
        add_start_index=True,
        strip_whitespace=True,
    )


def _pieces(paragraph: str, limit: int = MAX_PARAGRAPH_CHARS) -> list[tuple[int, int]]:
    """(start, end) pieces of at most ``limit`` characters, cut at plain sentence ends where
    there are some, else at the last space, else anywhere: linear in the paragraph's length."""
    if len(paragraph) <= limit:
        return [(0, len(paragraph))]
    out, start = [], 0
    ends = [m.start() for m in _PLAIN_END.finditer(paragraph)]
    i = 0
    while len(paragraph) - start > limit:
        cut = None
        while i < len(ends) and ends[i] <= start + limit:
            if ends[i] > start:
                cut = ends[i]
            i += 1
        if cut is None:
            space = paragraph.rfind(" ", start + 1, start + limit)
            cut = space if space > start else start + limit
        out.append((start, cut))
        start = cut
    out.append((start, len(paragraph)))
    return out


def _spans_in(paragraph: str) -> Iterator[tuple[int, int]]:
    """Sentence spans inside one paragraph, offsets exact; long paragraphs go piece by piece,
    lazily, so a caller that has enough sentences stops the splitting too."""
    for ps, pe in _pieces(paragraph):
        for s, e in _segment(paragraph[ps:pe]):
            yield ps + s, ps + e


def _merge(paragraph: str, spans: Iterable[tuple[int, int]], max_chars: int
           ) -> Iterator[tuple[int, int]]:
    """Glue each fragment pysbd cut off onto the sentence before it. One pass, and each test
    reads a bounded window at the seam, so this stays linear; a merge that would pass
    ``max_chars`` is left undone (the cap would only cut it again)."""
    prev: tuple[int, int] | None = None
    for s, e in spans:
        if prev is not None:
            ps, pe = prev
            if e - ps <= max_chars and continues(paragraph[max(ps, pe - 40):pe],
                                                 paragraph[s:min(e, s + 40)]):
                prev = (ps, e)
                continue
            yield prev
        prev = (s, e)
    if prev is not None:
        yield prev


def _segment(paragraph: str) -> list[tuple[int, int]]:
    """Sentence spans of one piece, located by searching so offsets are always exact."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for piece in _segmenter().segment(paragraph):
        piece = piece.strip()
        if not piece:
            continue
        at = paragraph.find(piece, cursor)
        if at < 0:  # pysbd changed the text; fall back to the rest of the paragraph as one span
            rest = paragraph[cursor:].strip()
            if rest:
                at = paragraph.index(rest, cursor)
                spans.append((at, at + len(rest)))
            return spans
        spans.append((at, at + len(piece)))
        cursor = at + len(piece)
    return spans


def _cap(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    if end - start <= max_chars:
        return [(start, end)]
    out = []
    for doc in _long_splitter(max_chars).create_documents([text[start:end]]):
        s = start + doc.metadata["start_index"]
        out.append((s, s + len(doc.page_content)))
    return out


def split_sentences(
    article_id: str, text: str, body_start: int = 0, max_chars: int = 600, *,
    merge: bool = True, limit: int | None = None,
) -> list[Sentence]:
    """Sentences of ``text`` from ``body_start`` on (a dateline before it is never glued on).
    ``merge=False`` keeps pysbd's fragments (benchmarks/bench_split.py measures both); with
    ``limit``, splitting stops once that many are found (cost stays bounded: a 2 MB line of
    "Ab. Ab. ..." would otherwise make half a million)."""
    sentences: list[Sentence] = []
    for para in _PARAGRAPH.finditer(text, body_start):
        base = para.start()
        spans: Iterable[tuple[int, int]] = _spans_in(para.group())
        if merge:
            spans = _merge(para.group(), spans, max_chars)
        for s, e in spans:
            for cs, ce in _cap(text, base + s, base + e, max_chars):
                if ce - cs >= _MIN_SENTENCE_CHARS:
                    sentences.append(
                        Sentence(article_id, len(sentences), cs, ce, text[cs:ce])
                    )
                    if limit is not None and len(sentences) >= limit:
                        return sentences
    return sentences


def make_chunks(
    article_id: str, text: str, sentences: list[Sentence], size: int, overlap: int,
    limit: int | None = None,
) -> list[Chunk]:
    """Windows of ``size`` sentences that overlap by ``overlap``, so an answer near a boundary
    is still seen with its context; at most ``limit`` of them."""
    if not sentences:
        return []
    stride = max(1, size - overlap)
    chunks: list[Chunk] = []
    first = 0
    while True:
        last = min(first + size, len(sentences)) - 1
        start, end = sentences[first].start, sentences[last].end
        chunks.append(Chunk(article_id, len(chunks), start, end, first, last, text[start:end]))
        if last == len(sentences) - 1 or (limit is not None and len(chunks) >= limit):
            return chunks
        first += stride
