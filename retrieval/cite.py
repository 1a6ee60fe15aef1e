"""Pick the sentences to cite: every sentence of the retrieved passages is scored against the
question, and the best one to three become citations whose quote is exactly article[start:end]."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from retrieval.catalog import Catalog
from retrieval.models import Citation, Passage
from retrieval.store import VectorStore
from retrieval.tokens import tokens, words

# Weights found on the bundled samples and checked on the dev questions (README, "Abstention").
DENSE_WEIGHT = 0.55
LEXICAL_WEIGHT = 0.45
PASSAGE_PRIOR = 0.04  # a little trust in the passage ranking, for ties
TYPE_BONUS = 0.04  # the sentence holds what the wh-word asks for
FOLLOW_MARGIN = 0.12  # further citations must score within this of the best

_NUMBER = re.compile(r"\d")
_NAME = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+")
_WHEN = re.compile(
    r"\b(?:\d{4}|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|January|February|"
    r"March|April|May|June|July|August|September|October|November|December|yesterday|today|"
    r"tomorrow|next week|last week)\b")


@dataclass(slots=True)
class Candidate:
    library: str
    article_id: str
    index: int
    start: int
    end: int
    quote: str
    passage: Passage
    passage_rank: int
    score: float = 0.0


def _weights(question: str) -> dict[str, float]:
    """Question terms; names and numbers weigh more, since an answer sentence must share them."""
    strong = {t for w in words(question) if w[:1].isupper() or _NUMBER.search(w)
              for t in tokens(w)}
    # The first word is capitalised by grammar, not because it names something.
    first = words(question)[:1]
    strong -= {t for w in first for t in tokens(w)} - {
        t for w in words(question)[1:] for t in tokens(w)}
    return {t: (1.5 if t in strong else 1.0) for t in tokens(question)}


def _matches(term: str, sentence_terms: set[str]) -> float:
    if term in sentence_terms:
        return 1.0
    # German/Germany, meet/meeting: a shared stem the stemmer missed.
    if len(term) >= 4:
        for s in sentence_terms:
            if len(s) >= 4 and (s.startswith(term) or term.startswith(s)):
                return 0.8
    return 0.0


def lexical_overlap(weights: dict[str, float], sentence: str) -> float:
    total = sum(weights.values())
    if not total:
        return 0.0
    terms = set(tokens(sentence))
    return sum(w * _matches(t, terms) for t, w in weights.items()) / total


def type_fit(question: str, sentence: str) -> float:
    q = question.lower().split()
    wh = q[0] if q else ""
    if wh in {"who", "whom", "whose"}:
        asked = {n.lower() for n in _NAME.findall(question)}
        return 1.0 if any(n.lower() not in asked for n in _NAME.findall(sentence)) else 0.0
    if wh == "when":
        return 1.0 if _WHEN.search(sentence) else 0.0
    if " ".join(q[:2]) in {"how many", "how much", "how long", "how old", "how far"}:
        return 1.0 if _NUMBER.search(sentence) else 0.0
    return 0.0


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def candidates(passages: list[Passage], catalog: Catalog) -> list[Candidate]:
    spans = catalog.sentence_spans(
        (p.library, p.article_id, p.first_sentence, p.last_sentence) for p in passages)
    texts = catalog.texts((p.library, p.article_id) for p in passages)
    seen: set[tuple[str, str, int]] = set()
    out = []
    for rank, p in enumerate(passages):
        text = texts[(p.library, p.article_id)]
        for idx, start, end in spans.get((p.library, p.article_id), []):
            key = (p.library, p.article_id, idx)
            if key in seen or not (p.first_sentence <= idx <= p.last_sentence):
                continue
            seen.add(key)
            out.append(Candidate(p.library, p.article_id, idx, start, end, text[start:end], p,
                                 rank))
    return out


def score_candidates(
    question: str, qvec: np.ndarray, cands: list[Candidate], vectors: VectorStore
) -> list[Candidate]:
    vecs = vectors.sentence_vectors([(c.library, c.article_id, c.index) for c in cands])
    weights = _weights(question)
    n = max(1, len({c.passage_rank for c in cands}))
    for c in cands:
        v = vecs.get((c.library, c.article_id, c.index))
        dense = float(v @ qvec) if v is not None else 0.0
        c.score = (DENSE_WEIGHT * dense + LEXICAL_WEIGHT * lexical_overlap(weights, c.quote)
                   + PASSAGE_PRIOR * (1 - c.passage_rank / n)
                   + TYPE_BONUS * type_fit(question, c.quote))
    return sorted(cands, key=lambda c: (-c.score, c.passage_rank, c.index))


def select(ranked: list[Candidate], threshold: float, max_citations: int) -> list[Citation]:
    """The best sentences above the threshold, a reprinted sentence cited once."""
    if not ranked or ranked[0].score < threshold:
        return []
    best = ranked[0].score
    chosen: dict[str, Citation] = {}
    for c in ranked:
        key = _norm(c.quote)
        if key in chosen:
            if c.article_id not in chosen[key].also_in and c.article_id != chosen[key].article_id:
                chosen[key].also_in.append(c.article_id)
            continue
        if len(chosen) == max_citations or c.score < max(threshold, best - FOLLOW_MARGIN):
            continue
        p = c.passage
        chosen[key] = Citation(
            n=len(chosen) + 1, quote=c.quote, article_id=c.article_id, title=p.title,
            source=p.source, published=p.published, url=p.url, start=c.start, end=c.end,
            score=round(c.score, 4), library=c.library, sentence_index=c.index, place=p.place)
    return list(chosen.values())
