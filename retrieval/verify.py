"""Check a generated answer sentence by sentence against the evidence sentences it cites.

A sentence is kept only when it cites evidence that exists, every name and number in it
appears in what it cites, it does not add or drop a negation, and it is close to its cited
sentences both in meaning (embedding similarity) and in wording (content-word overlap).
Unsupported sentences are removed, never shown."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from retrieval.models import ClaimCheck
from retrieval.planted import reads_as_instruction
from retrieval.tokens import STOPWORDS, term_match, tokens, words

Embed = Callable[[list[str]], np.ndarray]

MARKER = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_LEADING_MARKERS = re.compile(r"^(?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}
_NUMBER_WORDS.update({w: str(10 * i) for i, w in enumerate(
    "thirty forty fifty sixty seventy eighty ninety".split(), start=3)})
_NUMBER_WORDS.update({w: f"#{i}" for i, w in enumerate(
    "first second third fourth fifth sixth seventh eighth ninth tenth".split(), start=1)})
_SCALE_WORDS = {"hundred", "hundreds", "thousand", "thousands", "million", "millions",
                "billion", "billions", "trillion", "dozen", "dozens"}
_NEGATIONS = {"not", "no", "never", "none", "neither", "nor", "without", "denied", "denies",
              "deny", "refused", "rejected"}
# Opposites that leave wording and meaning vectors close: "opposed" cited, "supported" claimed.
# Stems, as tokens() gives them.
_OPPOSITES = [("support", "oppos"), ("rise", "fall"), ("rose", "fell"), ("increas", "decreas"),
              ("rais", "cut"), ("win", "lost"), ("won", "lost"), ("accept", "reject"),
              ("approv", "reject"), ("allow", "ban"), ("lift", "impos"), ("withdraw", "keep"),
              ("withdraw", "deploy"), ("open", "close"), ("confirm", "deni"), ("befor", "after"),
              ("higher", "lower"), ("more", "less"), ("gain", "loss"), ("end", "start"),
              ("resign", "appoint"), ("acquit", "convict"), ("releas", "arrest")]
_OPPOSITE: dict[str, set[str]] = {}
for _a, _b in _OPPOSITES:
    _OPPOSITE.setdefault(_a, set()).add(_b)
    _OPPOSITE.setdefault(_b, set()).add(_a)
# Capitalised only because they begin a sentence; never taken for names there.
_STARTERS = frozenset("""according after although as at before both but during earlier even
    following however in last later many meanwhile most next officials on only other over
    several since some still the their there these this those today under until when while
    yesterday yes""".split())


@dataclass(slots=True)
class Evidence:
    """What a claim may rely on: the cited sentence, plus the date and source it is shown with."""

    text: str
    published: str = ""
    source: str = ""


def split_claims(text: str) -> list[str]:
    """The answer's sentences; a marker that pysbd split off ("Lambrecht. [1]") goes back to the
    sentence it follows."""
    from retrieval.split import _segmenter

    out: list[str] = []
    for part in _segmenter().segment(text.strip()):
        part = part.strip()
        lead = _LEADING_MARKERS.match(part)
        if lead and out:
            out[-1] = f"{out[-1]} {lead.group(0).strip()}"
            part = part[lead.end():].strip()
        if part:
            out.append(part)
    return out


def _marker_numbers(group: str) -> list[int]:
    """The numbers inside one marker: "2" of [2], "1, 3" of [1, 3]."""
    return [int(n) for n in re.split(r"\s*[,;]\s*", group)]


def cited_numbers(claim: str) -> list[int]:
    return [n for g in MARKER.findall(claim) for n in _marker_numbers(g)]


def strip_markers(claim: str) -> str:
    return MARKER.sub("", claim).strip()


def _numbers(text: str) -> set[str]:
    out = {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}
    for w in words(text.lower()):
        if w in _NUMBER_WORDS:
            out.add(_NUMBER_WORDS[w])
        elif w in _SCALE_WORDS:
            out.add(w.rstrip("s"))
    return out


def _names(claim: str, support_lower: set[str]) -> list[str]:
    """Capitalised words that name someone or something; a sentence's first word only when it
    is not an ordinary word the support also uses in lower case."""
    out = []
    for i, w in enumerate(words(claim)):
        if not w[:1].isupper():
            continue
        low = w.lower().removesuffix("'s").removesuffix("\u2019s")
        if low in STOPWORDS or (i == 0 and (low in _STARTERS or low in support_lower)):
            continue
        out.append(w)
    return out


def _missing_names(text: str, other: str, terms: set[str], other_acronyms: set[str]
                   ) -> list[str]:
    """The names of ``text`` that ``other`` lacks (``terms``: its terms; ``other_acronyms``:
    its acronyms), in order."""
    lower = {w.lower() for w in words(other)}
    return [n for n in _names(text, lower)
            if not any(term_match(t, terms) for t in tokens(n))
            and n.lower() not in other_acronyms]


def _opposite(stems: Iterable[str], terms: set[str]) -> tuple[str, str] | None:
    """The first of ``stems`` whose opposite ``terms`` holds, and that opposite."""
    for t in stems:
        for o in sorted(_OPPOSITE.get(t, set()) & terms):
            return t, o
    return None


def _negated(text: str) -> bool:
    ws = {w.lower() for w in words(text)}
    return bool(ws & _NEGATIONS) or "n't" in text.lower() or "n\u2019t" in text.lower()


def _date_words(published: str) -> str:
    if not published:
        return ""
    import calendar

    y, m, d = published.split("-")
    return f"{y} {int(d)} {calendar.month_name[int(m)]} {calendar.month_abbr[int(m)]}"


_CLAUSE = re.compile(r"(?<=[,;:])\s+|\s+(?=\u2014|--)")


def spans(sentence: str, longest: int = 3) -> list[str]:
    """The sentence and its runs of up to ``longest`` clauses: a claim that restates one clause
    of a long sentence is compared with that clause, not diluted by the rest."""
    clauses = [c for c in _CLAUSE.split(sentence) if c.strip()]
    out = [sentence]
    if len(clauses) > 1:
        for size in range(1, min(longest, len(clauses) - 1) + 1):
            out += [" ".join(clauses[i:i + size]) for i in range(len(clauses) - size + 1)]
    return list(dict.fromkeys(out))


class Verifier:
    def __init__(self, embed: Embed, min_similarity: float, min_overlap: float) -> None:
        self.embed = embed
        self.min_similarity = min_similarity
        self.min_overlap = min_overlap
        self._vectors: dict[str, np.ndarray] = {}

    def _vecs(self, texts: list[str]) -> list[np.ndarray]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            for t, v in zip(missing, self.embed(missing), strict=True):
                self._vectors[t] = v
        return [self._vectors[t] for t in texts]

    def check(self, claim: str, evidence: Sequence[Evidence]) -> ClaimCheck:
        from retrieval.cite import acronyms

        numbers = cited_numbers(claim)
        cites = list(dict.fromkeys(n for n in numbers if 1 <= n <= len(evidence)))
        missing = sorted({n for n in numbers if n not in cites})
        text = strip_markers(claim)
        dropped = f"; dropped [{', '.join(map(str, missing))}], which does not exist" \
            if missing else ""

        def result(kept: bool, reason: str, sim: float = 0.0, ovl: float = 0.0) -> ClaimCheck:
            return ClaimCheck(claim, cites, kept, reason + dropped, round(sim, 4), round(ovl, 4))

        if not cites:
            return result(False, "cites no evidence that exists" if numbers else "no citation")
        cited = [evidence[n - 1] for n in cites]
        if any(reads_as_instruction(e.text) for e in cited):
            return result(False, "a cited sentence addresses a model, not the news: it is "
                                 "never support")
        support = " ".join(e.text for e in cited)
        meta = " ".join(f"{_date_words(e.published)} {e.source}" for e in cited)
        support_acronyms = acronyms(support)
        support_terms = set(tokens(f"{support} {meta}")) | support_acronyms

        extra = sorted(_numbers(text) - _numbers(f"{support} {meta}"))
        if extra:
            return result(False, f"number {extra[0]} is in none of its cited sentences")
        if missing := _missing_names(text, support, support_terms, support_acronyms):
            return result(False, f"name {missing[0]} is in none of its cited sentences")
        if _negated(text) != _negated(support):
            return result(False, "negation differs from its cited sentences")
        if pair := _opposite(sorted(set(tokens(text)) - support_terms), support_terms):
            return result(False, f"says {pair[0]!r} where its cited sentences say {pair[1]!r}")

        sim, ovl = self.closeness(text, [e.text for e in cited], support_terms)
        if sim < self.min_similarity:
            return result(False, f"too far in meaning from its cited sentences "
                                 f"(similarity {sim:.2f})", sim, ovl)
        if ovl < self.min_overlap:
            return result(False, f"too few of its words are in its cited sentences "
                                 f"(overlap {ovl:.2f})", sim, ovl)
        return result(True, "supported", sim, ovl)

    def closeness(self, text: str, sentences: Sequence[str],
                  terms: set[str] | None = None) -> tuple[float, float]:
        """How near ``text`` is to ``sentences``: the best embedding similarity to one of
        their clause runs, and the share of its content words they hold (``terms``: theirs,
        when already computed)."""
        from retrieval.cite import acronyms

        if terms is None:
            joined = " ".join(sentences)
            terms = set(tokens(joined)) | acronyms(joined)
        content = tokens(text)
        ovl = (sum(term_match(t, terms) > 0 for t in content) / len(content)
               if content else 0.0)
        qv, *cvs = self._vecs([text, *(p for s in sentences for p in spans(s))])
        return max(float(qv @ cv) for cv in cvs), ovl

    def check_claims(self, claims: list[str], evidence: Sequence[Evidence]) -> list[ClaimCheck]:
        # One encode for every claim and the spans of the evidence they cite (not of all the
        # evidence: most of it is never cited).
        cited = sorted({n for c in claims for n in cited_numbers(c) if 1 <= n <= len(evidence)})
        self._vecs([strip_markers(c) for c in claims]
                   + [p for n in cited for p in spans(evidence[n - 1].text)])
        return [self.check(c, evidence) for c in claims]


def renumber(checks: Sequence[ClaimCheck]) -> tuple[str, list[int]]:
    """The kept sentences as one answer, markers renumbered 1, 2, ... by first use, and the
    evidence numbers in that order. Renumbering by first use is stable as the answer grows,
    so a streamed prefix shows the same numbers as the final answer."""
    order: list[int] = []
    parts = []
    for c in checks:
        if not c.kept:
            continue

        def sub(m: re.Match, cites: list[int] = c.cites) -> str:
            kept = [n for n in _marker_numbers(m.group(1)) if n in cites]
            for n in kept:
                if n not in order:
                    order.append(n)
            return " " + "".join(f"[{order.index(n) + 1}]" for n in kept) if kept else ""

        parts.append(MARKER.sub(sub, c.claim).strip())
    return " ".join(parts), order


def disagreement(claim: str, sentence: str) -> str | None:
    """How a claim contradicts a sentence it closely matches: a number or a name that the
    sentence replaces with another, a negation only one of them has, or an opposite word.
    None when they disagree on none of these (the claim may still say more than the sentence).
    """
    from retrieval.cite import acronyms

    c_nums, s_nums = _numbers(claim), _numbers(sentence)
    if c_nums - s_nums and s_nums - c_nums:
        return (f"it says {min(c_nums - s_nums).lstrip('#')} where the article says "
                f"{min(s_nums - c_nums).lstrip('#')}")
    # A name is disputed only where the sentence puts another name in its place: the same
    # content word before or after it ("counterpart Olaf" / "counterpart Christina"), or the
    # same words on both sides. A sentence that merely names more ("British", "Ukrainian", or
    # "in Europe" against "in Moscow") does not dispute a claim.
    places = []
    for text, other in ((claim, sentence), (sentence, claim)):
        other_acronyms = acronyms(other)
        ws = words(text)
        missing = set(_missing_names(text, other, set(tokens(other)) | other_acronyms,
                                     other_acronyms))
        places.append({(i, w): (ws[i - 1].lower() if i else "",
                                ws[i + 1].lower() if i + 1 < len(ws) else "")
                       for i, w in enumerate(ws) if w in missing})
    for (_, n), (before, after) in places[0].items():
        for (_, m), (b2, a2) in places[1].items():
            same = [x for x, y in ((before, b2), (after, a2)) if x == y]
            if len(same) == 2 or any(x and x not in STOPWORDS for x in same):
                return f"it names {n} where the article names {m}"
    if _negated(claim) != _negated(sentence):
        return "the article says the opposite: one of them is negated"
    s_words = {toks[0]: w for w in words(sentence) if (toks := tokens(w))}
    c_words: dict[str, str] = {}  # the claim's words the sentence lacks, by stem, in order
    for w in words(claim):
        if (toks := tokens(w)) and toks[0] not in s_words:
            c_words.setdefault(toks[0], w)
    if pair := _opposite(c_words, set(s_words)):
        return f"it says {c_words[pair[0]]!r} where the article says {s_words[pair[1]]!r}"
    return None
