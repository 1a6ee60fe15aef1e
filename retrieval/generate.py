"""An LLM answer written from the best candidate sentences, shown only where verification bears
it out; otherwise the extractive answer, with a short note saying why."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import Any

from retrieval.answer import mark_passages
from retrieval.cite import Candidate, quote_key, to_citation
from retrieval.llm import MAX_REPLY_CHARS, LLMError, complete
from retrieval.models import Answer, ClaimCheck
from retrieval.planted import reads_as_instruction
from retrieval.prompts import PROMPTS_DIR, render
from retrieval.verify import Evidence, Verifier, renumber, split_claims

NOT_FOUND = "NOT_FOUND"
_ENDS = re.compile(r"[.!?\]]")  # where a sentence (or its marker) may end


@cache
def _chat_prompt(system: str, user: str):
    from langchain_core.prompts import ChatPromptTemplate

    def read(name: str) -> str:
        return (PROMPTS_DIR / f"{name}.txt").read_text("utf-8").strip()

    return ChatPromptTemplate.from_messages([("system", read(system)), ("human", read(user))])


def chat_messages(system: str, user: str, **values: str) -> list:
    return _chat_prompt(system, user).format_messages(**values)


def pick_evidence(ranked: list[Candidate], n: int) -> list[Candidate]:
    out: list[Candidate] = []
    seen: set[str] = set()
    for c in ranked:
        key = quote_key(c.quote)  # a reprint is no new evidence
        # Sentences that address a model never reach it: a prompt can ask a model to treat
        # article text as data, but cannot make it.
        if key in seen or reads_as_instruction(c.quote):
            continue
        seen.add(key)
        out.append(c)
        if len(out) == n:
            break
    return out


def quoted(text: str) -> str:
    """Article text as a JSON string on one line: quoted data that can't end its line, close
    the evidence block or pass for the prompt's own words."""
    return json.dumps(" ".join(text.split()), ensure_ascii=False).replace("<", "\\u003c")


def evidence_block(evidence: list[Candidate]) -> str:
    return "\n".join(
        render("evidence_line", n=i, source=quoted(c.passage.source or "unknown source"),
               published=c.passage.published or "undated", text=quoted(c.quote))
        for i, c in enumerate(evidence, 1))


def _fallback(extractive: Answer, reason: str, checks: list[ClaimCheck] | None = None) -> Answer:
    return replace(extractive, note=render("llm_fallback", reason=reason),
                   verification=checks or [])


def llm_answer(
    question: str, ranked: list[Candidate], extractive: Answer, model: Any, verifier: Verifier,
    *, evidence_size: int, timeout_s: float, not_found_text: str,
    on_text: Callable[[str], None] | None = None, max_reply_chars: int = MAX_REPLY_CHARS,
    max_claims: int = 10,
) -> Answer:
    """The LLM's answer, each of its first ``max_claims`` sentences verified against what it
    cites and the rest removed unchecked; the extractive answer, with a note, when nothing of
    it holds, or when the model fails, is slower than ``timeout_s`` or writes more than
    ``max_reply_chars``."""
    evidence = pick_evidence(ranked, evidence_size)
    if not evidence:
        return _fallback(extractive, "no evidence sentence could be given to it")
    ev = [Evidence(c.quote, c.passage.published, c.passage.source) for c in evidence]
    stream = None
    if on_text is not None:
        checked: dict[str, ClaimCheck] = {}
        shown = [""]
        seen = [0]  # how much of the reply was looked at

        def stream(text: str) -> None:
            # Only whole sentences that passed verification are ever shown, even mid-stream.
            # Split again only when a sentence may have ended, and not once max_claims are
            # shown: splitting every growing prefix would cost the square of the reply.
            if len(checked) >= max_claims or not _ENDS.search(text, max(0, seen[0] - 1)):
                seen[0] = len(text)
                return
            seen[0] = len(text)
            whole = split_claims(text)[:-1][:max_claims]  # the last may still be growing
            for claim in whole:
                if claim not in checked:
                    checked[claim] = verifier.check(claim, ev)
            body, _ = renumber([checked[c] for c in whole])
            if body != shown[0]:
                shown[0] = body
                on_text(body)

    messages = chat_messages("answer_system", "answer_user", question=question,
                             evidence=evidence_block(evidence))
    try:
        text = complete(model, messages, timeout_s, stream, max_reply_chars)
    except LLMError as e:
        return _fallback(extractive, e.reason)
    if text.strip().rstrip(".").upper() == NOT_FOUND:
        return replace(extractive, answer=not_found_text, abstained=True, citations=[],
                       generator=f"llm:{model_name(model)}",
                       note="The LLM found no answer in the evidence.")
    claims = split_claims(text.replace(NOT_FOUND, ""))
    unchecked = max(0, len(claims) - max_claims)
    checks = verifier.check_claims(claims[:max_claims], ev)
    body, order = renumber(checks)
    if not body:
        return _fallback(extractive, "none of its sentences was supported by its citations",
                         checks)
    citations = [to_citation(evidence[n - 1], i) for i, n in enumerate(order, 1)]
    mark_passages(extractive.passages, citations)
    removed = sum(not c.kept for c in checks)
    note = f"{removed} unsupported sentence{'s' * (removed != 1)} removed." if removed else ""
    if unchecked:
        note = (f"{note} {unchecked} sentence{'s' * (unchecked != 1)} past the first "
                f"{max_claims} removed unchecked.").strip()
    return replace(extractive, answer=body, citations=citations, note=note,
                   generator=f"llm:{model_name(model)}", verification=checks)


def model_name(model: Any) -> str:
    return str(getattr(model, "model_name", None) or getattr(model, "model", "") or "llm")
