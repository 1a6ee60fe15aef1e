"""Written questions (newsqa-written format): their labels, and whether a cited span is the
labelled sentence.

A label names its article and character offsets into that article's text, so a citation is
judged by where it lies, not by what it says. Sentence bounds move whenever the splitter does,
so the label's own sentence span is not compared: a citation is the labelled sentence when it
holds the short answer's span, or covers most of one of the sentences labelled as saying the
same (``also``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Skills in the order the report lists them; any other skill follows, alphabetically.
SKILLS = ("paraphrase", "qualifier", "coref", "acronym", "number", "date", "lexical",
          "unanswerable")


@dataclass(slots=True, frozen=True)
class Span:
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def overlap(self, start: int, end: int) -> int:
        return max(0, min(self.end, end) - max(self.start, start))


@dataclass(slots=True)
class WrittenLabel:
    article_id: str
    skill: str
    answerable: bool
    split: str = ""
    short: Span | None = None  # None exactly when not answerable
    short_text: str = ""
    also: list[Span] = field(default_factory=list)


def is_written(record: Any) -> bool:
    """A newsqa-written record (RealTime QA records have ``answers`` and no ``answerable``)."""
    return isinstance(record, dict) and "answerable" in record and "article_id" in record


def _span(value: Any, name: str) -> Span:
    if not isinstance(value, dict):
        raise ValueError(f"'{name}' must be an object with start and end")
    start, end = value.get("start"), value.get("end")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)) \
            or not 0 <= start < end:
        raise ValueError(f"'{name}' needs integer offsets 0 <= start < end")
    return Span(start, end)


def label_from(record: dict) -> WrittenLabel:
    """The label of one written record; ValueError (or KeyError) says what is wrong with it."""
    answerable = record["answerable"]
    if not isinstance(answerable, bool):
        raise ValueError("'answerable' must be true or false")
    published = record["published"]
    try:
        dt.date.fromisoformat(published)
    except (TypeError, ValueError):
        raise ValueError(f"'published' must be YYYY-MM-DD, not {published!r}") from None
    label = WrittenLabel(article_id=str(record["article_id"]),
                         skill=str(record.get("skill") or "unlabelled"),
                         answerable=answerable, split=str(record.get("split") or ""))
    if answerable:
        label.short = _span(record["short"], "short")
        text = record["short"].get("text")
        if not isinstance(text, str) or len(text) != label.short.length:
            raise ValueError("'short.text' must be the text at its offsets")
        label.short_text = text
        also = record.get("also") or []
        if not isinstance(also, list):
            raise ValueError("'also' must be a list of spans")
        label.also = [_span(a, "also") for a in also]
    return label


def covers(label: WrittenLabel, start: int, end: int) -> bool:
    """Whether the span [start, end) of the labelled article is the labelled sentence."""
    if label.short is None:
        return False
    if start <= label.short.start and label.short.end <= end:
        return True
    return any(a.overlap(start, end) * 2 > a.length for a in label.also)


def is_labelled(label: WrittenLabel, article_id: str, start: int, end: int, quote: str = "",
                also_in: Iterable[str] = (), text: str = "") -> bool:
    """Whether a citation is the labelled sentence. A reprint counts too: a citation of the
    same sentence in another article lists the labelled one in ``also_in``, and then the
    labelled article's ``text`` must hold that quote where the label says."""
    if article_id == label.article_id:
        return covers(label, start, end)
    if label.article_id not in also_in or not quote or not text:
        return False
    at = text.find(quote)
    while at >= 0:
        if covers(label, at, at + len(quote)):
            return True
        at = text.find(quote, at + 1)
    return False


def skill_order(skills: Iterable[str]) -> list[str]:
    known = [s for s in SKILLS if s in skills]
    return known + sorted(set(skills) - set(SKILLS))
