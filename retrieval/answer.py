"""The extractive answer: only text from the cited sentences, each followed by its [n] marker."""

from __future__ import annotations

from retrieval.models import Answer, Citation, Passage
from retrieval.prompts import render


def mark_passages(passages: list[Passage], citations: list[Citation]) -> None:
    for p in passages:
        p.cited = [c.n for c in citations
                   if c.article_id == p.article_id and c.library == p.library
                   and p.start <= c.start and c.end <= p.end]


def extractive(
    question: str, citations: list[Citation], passages: list[Passage], stored: int,
    scope: str = "",
) -> Answer:
    if not citations:
        return Answer(question=question, answer=render("not_found", articles=stored, scope=scope),
                      abstained=True, citations=[], passages=passages)
    # The best sentence answers; a second one joins only when it is short enough to stay "short".
    parts = [f"{citations[0].quote} [1]"]
    if len(citations) > 1 and len(citations[0].quote) + len(citations[1].quote) <= 320:
        parts.append(f"{citations[1].quote} [2]")
    mark_passages(passages, citations)
    return Answer(question=question, answer=" ".join(parts), abstained=False,
                  citations=citations, passages=passages)
