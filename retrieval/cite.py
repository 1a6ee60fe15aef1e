"""Pick the sentences to cite: every sentence of the retrieved passages is scored against the
question, and the best one to three become citations whose quote is exactly article[start:end]."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from retrieval.catalog import Catalog
from retrieval.models import Citation, Passage
from retrieval.planted import reads_as_instruction
from retrieval.search import freshness
from retrieval.store import VectorStore
from retrieval.tokens import TermSet, term_match, tokens, words

# Weights chosen on the dev questions with benchmarks/tune_citations.py (docs/quality.md).
DENSE_WEIGHT = 0.55
LEXICAL_WEIGHT = 0.45
PASSAGE_PRIOR = 0.04  # a little trust in the passage ranking, for ties
# The sentence holds what the question asks for: a number for "how many", a date for "when".
# Nearly every news sentence names someone, so "who" tells least apart.
TYPE_BONUS = {"quantity": 0.08, "when": 0.05, "who": 0.03}
FOLLOW_MARGIN = 0.12  # further citations must score within this of the best
CONTEXT_SHARE = 1.0  # a question term found only around the sentence counts this much
CONTEXT_NAMES_ONLY = True  # only names carry over from context ("the talks" -> Moscow)
# News questions are about the news of their day: an article published close before the
# question's date (or today) earns up to RECENCY_WEIGHT, fading over RECENCY_DAYS.
RECENCY_WEIGHT = 0.20
RECENCY_DAYS = 7.0

_NUMBER = re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                     r"twenty|thirty|forty|fifty|hundreds?|thousands?|millions?|billions?|"
                     r"dozens?)\b", re.IGNORECASE)
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
    score: float = 0.0  # what candidates are ranked by
    relevance: float = 0.0  # the score without recency: what the abstention threshold sees


def _strong(question: str) -> set[str]:
    """Terms from names and numbers (capitalised past the first word, or with digits)."""
    ws = words(question)
    strong = {t for w in ws[1:] if w[:1].isupper() or _NUMBER.search(w) for t in tokens(w)}
    return strong | {t for w in ws[:1] if any(c.isdigit() for c in w) for t in tokens(w)}


def _weights(question: str, strong: set[str]) -> dict[str, float]:
    """Question terms; names and numbers (``strong``, found in the whole question: "how many
    Britons" names Britons) weigh more, since an answer sentence must share them. The "long"
    of "how long" asks for the answer; it is not a term to match."""
    q = question.lower().split()
    if " ".join(q[:2]) in QUANTITY:
        question = " ".join(question.split()[2:])
    return {t: (1.5 if t in strong else 1.0) for t in tokens(question)}


_CAPITALISED_RUN = re.compile(r"(?:\b[A-Z][a-z]+(?:\s+(?:of|for)\s+|\s+)){1,5}[A-Z][a-z]+")


def acronyms(sentence: str) -> set[str]:
    """Initials of capitalised runs: "European Union" also answers for "EU"."""
    out = set()
    for run in _CAPITALISED_RUN.findall(sentence):
        initials = "".join(w[0] for w in run.split() if w[0].isupper()).lower()
        out.add(initials)
        if run.startswith("The "):
            out.add(initials[1:])
    return out


def date_terms(published: str) -> set[str]:
    """A question's "in March" or "2022" can be answered by the article's date."""
    if not published:
        return set()
    year, month, _ = published.split("-")
    return set(tokens(f"{calendar.month_name[int(month)]} {year}"))


def lexical_overlap(weights: dict[str, float], sentence: str, published: str = "",
                    context: set[str] | None = None, strong: set[str] | None = None) -> float:
    """Weighted share of the question's terms that the sentence holds. A name found only in
    the sentence's context (its passage and title) counts CONTEXT_SHARE: "the talks" there is
    resolved by the sentences around it."""
    total = sum(weights.values())
    if not total:
        return 0.0
    terms = sentence_terms(sentence, published)
    context = TermSet(context) if context and not isinstance(context, TermSet) else context
    got = 0.0
    for t, w in weights.items():
        m = _term_match(t, terms)
        if m < 1.0 and context and (not CONTEXT_NAMES_ONLY or t in (strong or ())):
            m = max(m, CONTEXT_SHARE * _term_match(t, context))
        got += w * m
    return got / total


# Standing questions score the same new sentences against hundreds of questions: each
# sentence's and passage's terms are worked out once (bounded: a few MB).
@lru_cache(maxsize=8192)
def sentence_terms(sentence: str, published: str = "") -> frozenset[str]:
    return TermSet(frozenset(tokens(sentence)) | acronyms(sentence) | date_terms(published))


@lru_cache(maxsize=2048)
def passage_terms(title: str, text: str) -> frozenset[str]:
    """What a passage's sentences can borrow from around them: its words, title, acronyms."""
    return TermSet(frozenset(tokens(f"{title} {text}")) | acronyms(text) | acronyms(title))


def overlap_bound(weights: dict[str, float], title: str, text: str, published: str) -> float:
    """The most ``lexical_overlap`` can give any sentence of this passage: every question term
    the passage, its title or its date holds counted as the sentence's own."""
    total = sum(weights.values())
    if not total:
        return 0.0
    terms = _bound_terms(title, text, published)
    return sum(w * _term_match(t, terms) for t, w in weights.items()) / total


@lru_cache(maxsize=2048)
def _bound_terms(title: str, text: str, published: str) -> TermSet:
    return TermSet(passage_terms(title, text) | date_terms(published))


_term_match = lru_cache(maxsize=1 << 16)(term_match)


QUANTITY = {"how many", "how much", "how long", "how old", "how far"}


def answer_type(question: str) -> str:
    q = question.lower().split()
    if q and q[0] in {"who", "whom", "whose"}:
        return "who"
    if q and q[0] == "when":
        return "when"
    if " ".join(q[:2]) in QUANTITY:
        return "quantity"
    return ""


def type_fit(question: str, sentence: str, kind: str) -> float:
    """The bonus a sentence earns for holding the kind of thing the question asks for."""
    if kind == "who":
        asked = {n.lower() for n in _NAME.findall(question)}
        hit = any(n.lower() not in asked for n in _NAME.findall(sentence))
    elif kind == "when":
        hit = bool(_WHEN.search(sentence))
    elif kind == "quantity":
        hit = bool(_NUMBER.search(sentence))
    else:
        return 0.0
    return TYPE_BONUS[kind] if hit else 0.0


def candidates(passages: list[Passage], catalog: Catalog) -> list[Candidate]:
    spans = catalog.sentence_spans(
        (p.library, p.article_id, p.first_sentence, p.last_sentence) for p in passages)
    seen: set[tuple[str, str, int]] = set()
    out = []
    for rank, p in enumerate(passages):
        for idx, start, end in spans.get((p.library, p.article_id), []):
            key = (p.library, p.article_id, idx)
            if key in seen or not (p.first_sentence <= idx <= p.last_sentence):
                continue
            seen.add(key)
            # The passage is article.text[p.start:p.end], so the quote is exact without
            # reading the article again.
            quote = p.text[start - p.start : end - p.start]
            if reads_as_instruction(quote):  # planted for a model: never cited nor support
                continue
            out.append(Candidate(p.library, p.article_id, idx, start, end, quote, p, rank))
    return out


def score_candidates(
    question: str, qvec: np.ndarray, cands: list[Candidate], catalog: Catalog,
    vectors: VectorStore | None, ref_date: dt.date | None = None,
    vecs: dict[tuple[str, str, int], np.ndarray] | None = None, passages: int | None = None,
) -> list[Candidate]:
    """Rank ``cands``; ``vecs``: their sentence vectors when the caller holds them already;
    ``passages``: how many passages were ranked, when ``cands`` leave some out."""
    keys = [(c.library, c.article_id, c.index) for c in cands]
    if vecs is None:
        vecs = catalog.sentence_vectors(keys)
    # A store written before sentence vectors moved to the catalog.
    if len(vecs) < len(keys) and vectors is not None:
        vecs |= vectors.legacy_sentence_vectors([k for k in keys if k not in vecs])
    strong = _strong(question)
    weights = _weights(question, strong)
    kind = answer_type(question)
    n = passages or max(1, len({c.passage_rank for c in cands}))
    contexts: dict[int, frozenset[str]] = {}
    for c in cands:
        if id(c.passage) not in contexts:
            contexts[id(c.passage)] = passage_terms(c.passage.title, c.passage.text)
        v = vecs.get((c.library, c.article_id, c.index))
        dense = float(v @ qvec) if v is not None else 0.0
        lexical = lexical_overlap(weights, c.quote, c.passage.published,
                                  contexts[id(c.passage)], strong)
        c.relevance = (DENSE_WEIGHT * dense + LEXICAL_WEIGHT * lexical
                       + PASSAGE_PRIOR * (1 - c.passage_rank / n)
                       + type_fit(question, c.quote, kind))
        # Recency orders what is relevant; it never makes an irrelevant sentence citable.
        c.score = c.relevance + (RECENCY_WEIGHT * freshness(c.passage.published, ref_date,
                                                            RECENCY_DAYS)
                                 if ref_date and RECENCY_WEIGHT else 0.0)
    return sorted(cands, key=lambda c: (-c.score, c.passage_rank, c.index))


def quote_key(quote: str) -> str:
    """What a sentence and its reprints share: they differ in punctuation and case at most."""
    return " ".join(words(quote.lower()))


def best_relevance(ranked: list[Candidate]) -> float:
    return max((c.relevance for c in ranked), default=0.0)


# Abstention thresholds calibrated on the dev questions for each embedding precision, by one
# rule: the lowest that abstains on >= 90% of questions whose answer is not stored
# (docs/abstention.md).
ABSTAIN_BELOW = {"fp32": 0.51, "int8": 0.50}


def select(ranked: list[Candidate], threshold: float, max_citations: int,
           margin: float = FOLLOW_MARGIN) -> list[Citation]:
    """The best sentences above the threshold, a reprinted sentence cited once; further
    citations must score within ``margin`` of the first."""
    if not ranked or best_relevance(ranked) < threshold:
        return []
    best = ranked[0].score
    chosen: dict[str, Citation] = {}
    for c in ranked:
        # Reprints of one wire story: cite one copy, and count the outlets that printed it.
        key = quote_key(c.quote)
        if key in chosen:
            cit = chosen[key]
            if c.article_id not in cit.also_in and c.article_id != cit.article_id:
                cit.also_in.append(c.article_id)
                if c.passage.source and c.passage.source not in cit.sources:
                    cit.sources.append(c.passage.source)
            continue
        if len(chosen) == max_citations or c.relevance < threshold \
                or c.score < best - margin:
            continue
        chosen[key] = to_citation(c, len(chosen) + 1)
    return list(chosen.values())


def to_citation(c: Candidate, n: int) -> Citation:
    p = c.passage
    return Citation(n=n, quote=c.quote, article_id=c.article_id, title=p.title, source=p.source,
                    published=p.published, url=p.url, start=c.start, end=c.end,
                    score=round(c.score, 4), library=c.library, sentence_index=c.index,
                    place=p.place, sources=[p.source] if p.source else [])
