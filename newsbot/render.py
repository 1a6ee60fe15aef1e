"""Terminal renderings of results (the Discord embeds live in bot/)."""

from __future__ import annotations

import sys
import textwrap

from retrieval.models import (
    VERDICT_LABELS,
    Answer,
    CheckReport,
    Citation,
    FollowHit,
    StoredArticle,
)


def byline(c: Citation | StoredArticle, place: str = "") -> str:
    parts = [c.source or "unknown source"]
    if place:
        parts.append(place)
    parts.append(c.published or "undated")
    return ", ".join(parts)


def answer_text(a: Answer, width: int = 100) -> str:
    lines = [f"Q: {a.question}", ""]
    if a.short_answer:
        bold = "\033[1m{}\033[0m" if sys.stdout.isatty() else "**{}**"
        lines += [f"A: {bold.format(a.short_answer.text)}", ""]
    lines += textwrap.wrap(a.answer, width, initial_indent="   " if a.short_answer else "A: ",
                           subsequent_indent="   ")
    for c in a.citations:
        lines += ["", *citation_lines(c, width)]
    return "\n".join(lines)


def citation_lines(c: Citation, width: int = 100, label: str = "") -> list[str]:
    lines = textwrap.wrap(f"\u201c{c.quote}\u201d", width, initial_indent=label or f"[{c.n}] ",
                          subsequent_indent="    ")
    lines.append(f"    {c.title} \u2014 {byline(c, c.place)}")
    lines.append(f"    {c.url or '(no link)'}  (article {c.article_id}, "
                 f"chars {c.start}-{c.end})")
    if c.reported_by:
        lines.append(f"    {c.reported_by}: {', '.join(c.sources)}")
    if c.also_in:
        lines.append(f"    also printed in: {', '.join(c.also_in)}")
    return lines


def check_report_text(r: CheckReport, width: int = 100) -> str:
    lines = []
    for i, v in enumerate(r.verdicts, 1):
        if i > 1:
            lines.append("")
        lines += textwrap.wrap(f"{i}. {v.claim}", width, subsequent_indent="   ")
        why = "" if v.verdict != "disputed" else f" ({v.reason})"
        lines.append(f"   -> {VERDICT_LABELS[v.verdict].lower()}{why}")
        for c in v.citations:
            lines += citation_lines(c, width, "    ")
    if r.skipped:
        lines += ["", f"({r.skipped} more sentence(s) not checked: at most "
                      f"{len(r.verdicts)} are.)"]
    return "\n".join(lines)


def follow_hit_text(hit: FollowHit, width: int = 100) -> str:
    """A standing question answered by a new article, as `newsbot watch` prints it."""
    return "\n".join([f"Standing question #{hit.follow.id}: {hit.follow.question}",
                      *citation_lines(hit.citation, width),
                      f"    (the article arrived {hit.ingested_at})"])
