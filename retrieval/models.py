"""Plain, typed results passed between the stages: ingest -> store -> search -> cite -> answer."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

# What retrieval/split.py and retrieval/fragments.py make of a text. It is part of every stored
# article's hash, so after a change to the sentences they cut, re-ingesting an unchanged
# article re-splits it instead of keeping the old sentences. tests/test_split.py fails until
# this is bumped with the fingerprint beside it.
SPLITTER_VERSION = 2


@dataclass(slots=True)
class Sentence:
    """A sentence of an article; ``article.text[start:end] == text`` always holds."""

    article_id: str
    index: int
    start: int
    end: int
    text: str


@dataclass(slots=True)
class Chunk:
    """Consecutive sentences ``[first, last]`` of an article, searched as one passage."""

    article_id: str
    index: int
    start: int
    end: int
    first_sentence: int
    last_sentence: int
    text: str


@dataclass(slots=True)
class Article:
    id: str
    title: str
    text: str
    source: str = ""
    published: dt.date | None = None
    url: str = ""
    place: str = ""
    authors: list[str] = field(default_factory=list)
    origin: str = ""  # where it was read from: a path, or path:line for JSONL
    body_start: int = 0  # where sentences begin: just after a dateline, if there is one

    def hashed_fields(self) -> list[Any]:
        """What the content hash holds besides the splitter's version."""
        return [self.title, self.text, self.source, self.published_iso, self.url, self.place,
                self.authors]

    def content_hash(self) -> str:
        """Hash of all that is stored, so re-ingesting unchanged content is a no-op (unless the
        splitter changed what it makes of it)."""
        payload = json.dumps([*self.hashed_fields(), SPLITTER_VERSION], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]

    @property
    def published_iso(self) -> str:
        return self.published.isoformat() if self.published else ""


@dataclass(slots=True)
class Passage:
    """A retrieved chunk with its article's metadata and the fused retrieval score."""

    article_id: str
    library: str
    chunk_index: int
    start: int
    end: int
    first_sentence: int
    last_sentence: int
    text: str
    title: str
    source: str
    published: str
    url: str
    score: float
    place: str = ""
    cited: list[int] = field(default_factory=list)  # citation numbers whose quote lies inside


@dataclass(slots=True)
class Citation:
    n: int
    quote: str
    article_id: str
    title: str
    source: str
    published: str
    url: str
    start: int
    end: int
    score: float
    library: str = "global"
    sentence_index: int = 0
    place: str = ""
    also_in: list[str] = field(default_factory=list)  # other article ids printing the same sentence
    sources: list[str] = field(default_factory=list)  # distinct sources printing it, own first

    @property
    def reported_by(self) -> str:
        """ "reported by N sources" when a wire story was reprinted, else "". """
        return f"reported by {len(self.sources)} sources" if len(self.sources) > 1 else ""


@dataclass(slots=True)
class ShortAnswer:
    """The exact span of citation [1] that answers the question:
    ``article.text[start:end] == text``."""

    text: str
    article_id: str
    start: int
    end: int
    confidence: float = 0.0


@dataclass(slots=True)
class ClaimCheck:
    """One sentence of a generated answer and whether its cited sentences bear it out."""

    claim: str  # the sentence as generated, citation markers included
    cites: list[int]  # the evidence numbers it cites that exist
    kept: bool
    reason: str  # "supported", or why it was removed
    similarity: float = 0.0  # best embedding similarity to a cited sentence
    overlap: float = 0.0  # share of its content words found in its cited sentences


@dataclass(slots=True)
class Answer:
    question: str
    answer: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    score: float = 0.0  # the best sentence's score, which the abstention threshold is set on
    generator: str = "extractive"  # or "llm:MODEL" when a verified LLM answer is given
    note: str = ""  # e.g. why the LLM answer was not used
    verification: list[ClaimCheck] = field(default_factory=list)
    short_answer: ShortAnswer | None = None  # None when the reader is not confident of one
    reader: str = ""  # "" for the heuristic scorer, else the reader's name and precision
    # The reader's highest probability among the sentences it re-read: what its floor is
    # compared with (the sentence cited [1] can be a lower one, when the scorer bars that one).
    reader_best: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape; the CLI contract depends on these keys."""
        return {
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "citations": [asdict(c) for c in self.citations],
            "passages": [asdict(p) for p in self.passages],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "score": round(self.score, 4),
            "generator": self.generator,
            "note": self.note,
            "verification": [asdict(c) for c in self.verification],
            "short_answer": ({k: v for k, v in asdict(self.short_answer).items()
                              if k != "confidence"} if self.short_answer else None),
            "reader": self.reader,
        }


SUPPORTED, DISPUTED, NOT_FOUND = "supported", "disputed", "not_found"
VERDICT_LABELS = {SUPPORTED: "Supported by the articles",
                  DISPUTED: "The articles say otherwise",
                  NOT_FOUND: "Not in the articles"}


@dataclass(slots=True)
class Verdict:
    """What the articles say about one claim of a checked message."""

    claim: str
    verdict: str  # SUPPORTED, DISPUTED (the articles say otherwise) or NOT_FOUND
    reason: str  # why: "supported", or how the quoted sentence disagrees
    citations: list[Citation] = field(default_factory=list)  # what it relies on, best first


@dataclass(slots=True)
class CheckReport:
    """A message checked against the articles, claim by claim."""

    text: str
    verdicts: list[Verdict]
    skipped: int = 0  # claims past the limit, not checked
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The `check --json` shape."""
        return {"text": self.text, "skipped": self.skipped,
                "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
                "claims": [{"claim": v.claim, "verdict": v.verdict, "reason": v.reason,
                            "citations": [asdict(c) for c in v.citations]}
                           for v in self.verdicts]}


@dataclass(slots=True)
class IngestFailure:
    where: str  # path, or path:line
    reason: str


@dataclass(slots=True)
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[IngestFailure] = field(default_factory=list)
    sentences: int = 0
    chunks: int = 0
    seconds: float = 0.0
    notes: list[IngestFailure] = field(default_factory=list)  # stored, with a limit applied

    def summary(self) -> str:
        line = (
            f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"failed {len(self.failed)}; {self.sentences} sentences, {self.chunks} chunks "
            f"in {self.seconds:.1f} s"
        )
        return "\n".join([line, *(f"  failed: {f.where}: {f.reason}" for f in self.failed),
                          *(f"  note: {f.where}: {f.reason}" for f in self.notes)])

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": [asdict(f) for f in self.failed],
                "notes": [asdict(f) for f in self.notes]}


@dataclass(slots=True)
class StoredArticle:
    """An article as the store lists it (no text), for `sources` and `/sources`."""

    library: str
    id: str
    title: str
    source: str
    published: str
    url: str
    sentences: int
    ingested_at: str


@dataclass(slots=True)
class Follow:
    """A standing question: answered when an article that answers it arrives."""

    id: int
    scope: str  # a Discord server's id, or "cli" for `newsbot follow`
    channel: str  # where answers are posted ("" for the CLI)
    libraries: list[str]  # what it reads
    question: str
    added_by: str  # a Discord user id, or "operator"
    added: str  # ISO time; only articles stored after it can answer
    paused: str = ""  # why it no longer posts ("" while active)
    last_answer: str = ""  # what was last posted, so the same answer is never posted twice
    last_posted: str = ""


@dataclass(slots=True)
class FollowHit:
    """A new article's sentence that answers a standing question."""

    follow: Follow
    citation: Citation
    answer: str  # compared with ``follow.last_answer``: the sentence, normalised
    ingested_at: str  # when the answering article was stored (ISO time)
    score: float = 0.0
