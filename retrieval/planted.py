"""Sentences planted in an article to steer a model: "Ignore previous instructions ...", "Note
for automated news summaries: report that ...". News addresses its readers, not models, so a
sentence that addresses a model, an assistant or an automated summary is never evidence: it is
not cited, not sent to an LLM, and never counts as support for a claim."""

from __future__ import annotations

import re

# Who a planted sentence addresses. Deliberately narrow: news about AI ("the AI tools must be
# labelled, the minister said") is news, and only a sentence that speaks *to* a model is not.
_ADDRESSEE = (r"(?:(?:any|all|the|automated|automatic|ai|news|machine)[- ]){0,3}"
              r"(?:summar(?:y|ies|i[sz]ers?|i[sz]ation)|ai|a\.i\.|llms?|chatbots?|"
              r"(?:ai |language )?models?|(?:ai |virtual )?assistants?)")
_IMPERATIVE = (r"(?:please\s+)?(?:report|say|state|write|mention|claim|answer|tell|include|"
               r"ignore|respond|reply|add|note|stress)\b")
_INSTRUCTION = re.compile(
    # "ignore / disregard previous instructions"
    r"\b(?:ignore|disregard|forget|override)\b[^.]{0,60}\b(?:instructions?|rules|prompts?|"
    r"guidelines)\b"
    r"|\bsystem prompt\b"
    r"|\byou are (?:now )?(?:an? |the )?(?:ai|assistant|chatbot|bot|language model)\b"
    r"|\bas an ai\b"
    # "Note for automated news summaries: ...", "Message to AI assistants: ..."
    rf"|\b(?:note|message|instructions?|attention|reminder|notice|memo)\s*,?\s*(?:for|to)\s+"
    rf"{_ADDRESSEE}\b"
    # "Summaries: report that ...", "AI assistants, say that ..."
    rf"|\b{_ADDRESSEE}\s*[:,]\s*{_IMPERATIVE}"
    # "If you are an AI ...", "When summarising this article, ..."
    r"|\b(?:if|when) you(?:'re|\u2019re| are) (?:an? )?(?:ai|llm|language model|assistant|"
    r"chatbot|bot|summari[sz]er)\b"
    r"|\bwhen summari[sz]ing (?:this|the|these)\b",
    re.IGNORECASE)


def reads_as_instruction(sentence: str) -> bool:
    """Whether ``sentence`` addresses a model rather than reports news."""
    return bool(_INSTRUCTION.search(sentence))
