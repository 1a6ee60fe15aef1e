"""Follow-up questions ("and who did he meet in the Netherlands?") rewritten into standalone ones
from the conversation's last turns: by the LLM when one is configured, else by carrying the
previous question's names and topic into the follow-up."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from retrieval.tokens import STOPWORDS, WH_WORDS, words

_CONNECTOR = re.compile(r"^(?:and|but|so|also|then|ok|okay|well)\b[\s,]*", re.IGNORECASE)
_PRONOUN = re.compile(r"\b(?:he|she|him|her|they|them)\b", re.IGNORECASE)
_POSSESSIVE = re.compile(r"\b(?:his|her|their)\b", re.IGNORECASE)


@dataclass(slots=True)
class Turn:
    question: str  # as asked, rewritten into a standalone question
    answer: str


def names(question: str) -> list[str]:
    """Capitalised runs past the first word ("Ben Wallace", "Germany"), in order."""
    ws = words(question)
    out: list[str] = []
    run: list[str] = []
    for w in [*ws[1:], ""]:
        if w[:1].isupper() and w.lower() not in STOPWORDS:
            run.append(w)
        elif run:
            out.append(" ".join(run))
            run = []
    return list(dict.fromkeys(out))


def topic(question: str) -> list[str]:
    return [w for w in words(question) if not w[:1].isupper() and w.lower() not in STOPWORDS
            and w.lower() not in WH_WORDS and len(w) > 2]


def carry_over(question: str, history: list[Turn]) -> str:
    """The rule-based rewrite: pronouns become the previous question's first name; a follow-up
    that names nothing itself gets the previous names and topic added."""
    if not history:
        return question
    previous = history[-1].question
    before = names(previous)
    q = _CONNECTOR.sub("", question.strip())
    if before:
        subject = before[0]
        q = _POSSESSIVE.sub(f"{subject}'s", q, count=1)
        q = _PRONOUN.sub(subject, q, count=1)
    own = names(f"x {q}")
    if not own:
        extra = [*before, *[w for w in topic(previous) if w.lower() not in q.lower()]]
        if extra:
            q = f"{q.rstrip('?').rstrip()} ({', '.join(extra)})?"
    elif before and not any(before[0].lower() in n.lower() for n in own):
        q = f"{q.rstrip('?').rstrip()} ({before[0]})?"
    return q


def rewrite(question: str, history: list[Turn], model: Any = None,
            timeout_s: float = 10.0) -> tuple[str, str]:
    """(standalone question, how it was made: "as asked", "llm" or "carried over")."""
    if not history:
        return question, "as asked"
    if model is not None:
        from retrieval.generate import chat_messages
        from retrieval.llm import LLMError, complete

        convo = "\n".join(f"Q: {t.question}\nA: {' '.join(t.answer.split())[:500]}"
                          for t in history)
        try:
            text = complete(model, chat_messages("rewrite_system", "rewrite_user",
                                                 history=convo, question=question), timeout_s)
            line = text.strip().splitlines()[0].strip().strip('"')
            if 3 <= len(line) <= 1000:
                return line, "llm"
        except LLMError:
            pass
    return carry_over(question, history), "carried over"
