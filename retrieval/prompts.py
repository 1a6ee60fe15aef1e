"""Prompt and message templates live as files in `prompts/`, not as strings in code."""

from __future__ import annotations

from functools import cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


@cache
def template(name: str):
    from langchain_core.prompts import PromptTemplate

    return PromptTemplate.from_template((PROMPTS_DIR / f"{name}.txt").read_text("utf-8").strip())


def render(name: str, **values: object) -> str:
    return template(name).format(**values)
