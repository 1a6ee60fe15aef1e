"""One tokenizer for everything lexical (BM25 and citation overlap), so both agree on a "word"."""

from __future__ import annotations

import re
from bisect import bisect_left
from functools import lru_cache

_WORD = re.compile(r"\w[\w'\u2019-]*\w|\w", re.UNICODE)
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    said says say also according told tell week year years day days one new""".split()
)
# Question words that carry meaning for the answer's type, not for the match.
WH_WORDS = frozenset("who whom whose what which when where why how".split())


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def normalise(text: str) -> str:
    """Lower case, whitespace collapsed: how quotes and answers are compared."""
    return " ".join(text.lower().split())


def words(text: str) -> list[str]:
    return [w.strip("'\u2019-") for w in _WORD.findall(text)]


def tokens(text: str) -> list[str]:
    """Lower-cased, stop-worded, stemmed tokens; possessives fold into their noun."""
    ws = [w.lower().removesuffix("'s").removesuffix("\u2019s") for w in words(text)]
    ws = [w for w in ws if w and w not in STOPWORDS and w not in WH_WORDS]
    return _stemmer().stemWords(ws)


def tokens_many(texts: list[str]) -> list[list[str]]:
    return [tokens(t) for t in texts]


class TermSet(frozenset):
    """Terms that many questions are matched against: the prefix test is a binary search."""

    __slots__ = ("_sorted",)

    def starts_with(self, prefix: str) -> bool:
        try:
            ordered = self._sorted
        except AttributeError:
            ordered = self._sorted = sorted(self)
        i = bisect_left(ordered, prefix)
        return i < len(ordered) and ordered[i].startswith(prefix)


def term_match(term: str, terms: set[str] | frozenset[str]) -> float:
    """1 if the stemmed ``term`` is among ``terms``; 0.8 for a shared stem the stemmer missed
    (German/Germany, meet/meeting); else 0."""
    if term in terms:
        return 1.0
    if len(term) >= 4 and isinstance(terms, TermSet):
        # The same test as below: a term of 4+ letters that begins with it, or that it begins with.
        hit = terms.starts_with(term) or any(term[:k] in terms for k in range(4, len(term)))
        return 0.8 if hit else 0.0
    if len(term) >= 4:
        for s in terms:
            if len(s) >= 4 and (s.startswith(term) or term.startswith(s)):
                return 0.8
    return 0.0
