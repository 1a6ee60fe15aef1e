"""Check a message against the articles, claim by claim.

Each claim gets one verdict: **supported** when one of the sentences found for it passes the
same verification as a sentence of an LLM answer (its names and numbers, its negation, close in
meaning and wording); **disputed** when a sentence that matches it closely says another number,
name or date, or the opposite; else **not found**. The claim is never paraphrased into a
question: it is searched as it is written, as `ask` searches a question.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from retrieval.errors import QuestionError
from retrieval.models import DISPUTED, NOT_FOUND, SUPPORTED, CheckReport, Verdict
from retrieval.tokens import words
from retrieval.verify import Evidence, Verifier, disagreement, split_claims

if TYPE_CHECKING:
    from retrieval.cite import Candidate
    from retrieval.service import Newsbot

MAX_CLAIMS = 5
MAX_CHARS = 4000  # the longest message Discord sends
MIN_WORDS = 3  # shorter pieces ("Wow.", "Source: Reuters") are not claims
READ = 6  # candidate sentences each claim is compared with
# A disputing sentence must match the claim this closely in wording: the altered name or
# number is itself missing ("Olaf Scholz" is two of six words), so this sits well below the
# verifier's bar for support.
DISPUTE_MIN_OVERLAP = 0.5

# Mentions, custom emoji and links carry no claim; markdown marks are not words.
_NOISE = re.compile(r"<(?:@[!&]?|#|a?:\w+:)\d+>|https?://\S+")
_MARKS = re.compile(r"[*_`~|]{1,3}|^>\s?", re.M)


def claims_of(text: str) -> list[str]:
    """The sentences of a message that can be checked, in order."""
    text = " ".join(_NOISE.sub(" ", _MARKS.sub("", text)).split())
    return [c for c in split_claims(text) if len(words(c)) >= MIN_WORDS]


def checkable(text: str) -> str:
    """``text`` stripped, or a QuestionError when it is empty or longer than a Discord
    message can be (cheap: the bot runs it before deferring)."""
    text = (text or "").strip()
    if not text:
        raise QuestionError("there is no text to check")
    if len(text) > MAX_CHARS:
        raise QuestionError(f"the text is {len(text):,} characters long; the limit is "
                            f"{MAX_CHARS:,}")
    return text


def check_text(nb: Newsbot, text: str, libraries: list[str]) -> CheckReport:
    """Check the first ``MAX_CLAIMS`` claims of ``text`` against ``libraries``."""
    started = time.perf_counter()
    text = checkable(text)
    claims = claims_of(text)
    if not claims:
        raise QuestionError(f"nothing to check: no sentence of {MIN_WORDS} words or more")
    s = nb.settings
    verifier = Verifier(nb.embedder.embed, s.verify_min_similarity, s.verify_min_overlap)
    verdicts = [judge(c, nb.rank(c, libraries, what="claim")[:READ], verifier)
                for c in claims[:MAX_CLAIMS]]
    return CheckReport(text, verdicts, max(0, len(claims) - MAX_CLAIMS),
                       {"total_ms": (time.perf_counter() - started) * 1000})


def judge(claim: str, cands: list[Candidate], verifier: Verifier) -> Verdict:
    """One claim's verdict from the sentences found for it, best first."""
    from retrieval.cite import to_citation

    for c in cands:
        check = verifier.check(f"{claim} [1]", [Evidence(c.quote, c.passage.published,
                                                         c.passage.source)])
        if check.kept:
            # Support may lack a word of the claim ("optimistic"); if another sentence near in
            # meaning has that word and negates the claim, that one wins. Its wording may share
            # little with the claim ("he was not optimistic"), so no overlap is asked of it.
            for d in cands:
                if d is not c and (why := _negates_what_support_lacks(claim, c.quote, d.quote)) \
                        and _close(verifier, claim, d.quote, min_overlap=0.0):
                    return Verdict(claim, DISPUTED, why, [to_citation(d, 1)])
            return Verdict(claim, SUPPORTED, "supported", [to_citation(c, 1)])
    # Only the sentence closest to the claim may dispute it: a farther one that happens to hold
    # another number ("nine hours" of other talks) is about something else.
    close = [(sim, c) for c in cands if (sim := _close(verifier, claim, c.quote))]
    if close:
        _, c = max(close, key=lambda x: x[0])
        why = disagreement(claim, c.quote)
        if why is not None:
            return Verdict(claim, DISPUTED, why, [to_citation(c, 1)])
    return Verdict(claim, NOT_FOUND, "no stored sentence says this", [])


def _close(verifier: Verifier, claim: str, sentence: str,
           min_overlap: float = DISPUTE_MIN_OVERLAP) -> float:
    """The similarity of a sentence close enough to dispute the claim, else 0."""
    sim, overlap = verifier.closeness(claim, [sentence])
    return sim if sim >= verifier.min_similarity and overlap >= min_overlap else 0.0


def _negates_what_support_lacks(claim: str, support: str, other: str) -> str | None:
    """How ``other`` negates the claim (or says its opposite), when it holds a content word of
    the claim that ``support`` lacks; else None. Other names and numbers in another sentence
    are usually another event, so only a negation overrides support."""
    from retrieval.tokens import term_match, tokens

    have = set(tokens(support))
    if not {t for t in tokens(claim) if not term_match(t, have)} & set(tokens(other)):
        return None
    why = disagreement(claim, other)
    return why if why and why.startswith(("the article says the opposite", "it says '")) \
        else None
