"""Answers as Discord embeds, always inside Discord's limits, with article and user text escaped."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

import discord

from retrieval.models import (
    DISPUTED,
    NOT_FOUND,
    SUPPORTED,
    VERDICT_LABELS,
    Answer,
    CheckReport,
    Citation,
    FollowHit,
    Passage,
    StoredArticle,
)

# Discord's documented message limits.
CONTENT_MAX = 2000
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FIELDS_MAX = 25
EMBEDS_MAX = 10
EMBED_TOTAL_MAX = 6000  # across every embed of one message
FOOTER_MAX = 2048

ELLIPSIS = "\u2026"
NONE = discord.AllowedMentions.none()  # every message: never ping anyone, any role, @everyone
_SAFE_URL = re.compile(r"^https?://[^\s<>()\[\]]+$")
ANSWER_COLOUR = discord.Colour.blurple()
ABSTAIN_COLOUR = discord.Colour.light_grey()


def ulen(text: str) -> int:
    """Length as Discord counts it (UTF-16 code units), so emoji can't push past a limit."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int) -> str:
    """Shorten to ``limit`` at a word boundary, never leaving half an escape or a surrogate."""
    if ulen(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    out = text
    while ulen(out) > limit - 1:
        out = out[: max(0, len(out) - max(1, (ulen(out) - limit + 1)))]
    space = out.rfind(" ")
    if space > len(out) * 0.6:
        out = out[:space]
    # A dangling backslash would escape the ellipsis; an open ** or ` would run on.
    trailing = len(out) - len(out.rstrip("\\"))
    if trailing % 2:
        out = out[:-1]
    return out.rstrip() + ELLIPSIS


# Every character that starts Markdown somewhere in a message or an embed. discord.py's own
# escape_markdown matches a masked link greedily ([.+]\(.+\)), so only the first of two links
# in one string was escaped; here every bracket is, so no [text](url) can survive.
_SPECIAL = re.compile(r"[\\*_~|`\[\]<>#]")
# Plain URLs stay as they are (escapes would break them); they are shown in full, so they hide
# nothing. No brackets or parentheses in them: a URL can't carry a masked link along.
_URL = re.compile(r"https?://[^\s<>\[\]()`|*~\\]+")
# Lists and -# subtext at a line's start; a backslash goes before the punctuation ("1\\.").
_LINE_START = re.compile(r"^(\s*(?:\d+)?)([-+.])(?=\s)", re.MULTILINE)
# The answer's own citation markers, kept readable; never where a link target could follow.
_MARKER = re.compile(r"\\\[(\d{1,2})\\\](?!\()")


def escape(text: str, *, markdown: bool = True, markers: bool = False) -> str:
    """The one escape for every string from articles or users that Discord shows: all
    Markdown (every masked link, bold, headings, quotes, lists, spoilers, code) made inert, and
    mentions broken. ``markdown=False`` is for footers, which Discord shows as plain text (an
    escape there would show its backslashes); ``markers`` keeps [n] citation markers as they
    are."""
    if markdown:
        out, at = [], 0
        for m in _URL.finditer(text):
            out += [_SPECIAL.sub(r"\\\g<0>", text[at:m.start()]), m.group()]
            at = m.end()
        out.append(_SPECIAL.sub(r"\\\g<0>", text[at:]))
        text = _LINE_START.sub(r"\1\\\2", "".join(out))
        if markers:
            text = _MARKER.sub(r"[\1]", text)
    return discord.utils.escape_mentions(text)


def code(text: str) -> str:
    """``text`` (an id, a file name) in a code span, verbatim so that it can be copied: nothing
    is escaped inside one."""
    text = " ".join(text.split())
    if "`" not in text:
        return f"`{text}`"
    if "``" not in text and not text.endswith("`"):
        return f"`` {text} ``"
    return escape(text)


def when(published: str) -> str:
    """A published date as Discord renders dates, in each reader's locale."""
    if not published:
        return "undated"
    day = dt.date.fromisoformat(published)
    return discord.utils.format_dt(dt.datetime(day.year, day.month, day.day, 12,
                                               tzinfo=dt.UTC), "D")


def link(label: str, url: str) -> str:
    label = escape(label).replace("[", "(").replace("]", ")")
    return f"[{label}]({url})" if _SAFE_URL.match(url or "") else label


def byline(title: str, source: str, published: str, url: str, limit: int) -> str:
    """'Title, Source, date' linked to the article; the title gives way first when short of room."""
    tail = f", {escape(source) or 'unknown source'}, {when(published)}"
    room = limit - ulen(tail) - (ulen(url) + 4 if _SAFE_URL.match(url or "") else 0)
    return link(cut(title, max(8, room)), url) + tail


def citation_field(c: Citation, limit: int = FIELD_VALUE_MAX) -> tuple[str, str]:
    name = cut(f"[{c.n}] {escape(c.title)}", FIELD_NAME_MAX)
    source = byline(c.title, c.source, c.published, c.url, min(400, limit // 2))
    if c.reported_by:  # one copy of a reprinted wire story is cited
        source = cut(f"{source} \u00b7 {c.reported_by}", min(460, limit // 2 + 60))
    quote_room = limit - ulen(source) - 3
    quote = "> " + cut(escape(c.quote), quote_room - 2).replace("\n", " ")
    return name, cut(f"{quote}\n{source}", limit)


def embed_size(e: discord.Embed) -> int:
    return ulen(e.title or "") + ulen(e.description or "") + ulen(e.footer.text or "") + sum(
        ulen(f.name or "") + ulen(f.value or "") for f in e.fields) + ulen(e.author.name or "")


def answer_embed(answer: Answer, footer: str = "") -> discord.Embed:
    """One embed: the answer with [n] markers, then one field per citation that fits."""
    if answer.abstained:
        return abstain_embed(answer)
    footer = cut(footer, 200)
    short = f"**{cut(escape(answer.short_answer.text), 200)}**\n\n" if answer.short_answer else ""
    e = discord.Embed(title=cut(escape(answer.question), TITLE_MAX),
                      description=short + cut(escape(answer.answer, markers=True), 1500),
                      colour=ANSWER_COLOUR)
    budget = EMBED_TOTAL_MAX - embed_size(e) - ulen(footer) - 16
    for c in answer.citations[:FIELDS_MAX]:
        per = min(FIELD_VALUE_MAX, budget - FIELD_NAME_MAX)
        if per < 120:
            break
        name, value = citation_field(c, per)
        e.add_field(name=name, value=value, inline=False)
        budget -= ulen(name) + ulen(value)
    shown = len(e.fields)
    if shown < len(answer.citations):
        footer = f"{footer} \u00b7 {len(answer.citations) - shown} more citations not shown"
    if footer:
        e.set_footer(text=cut(escape(footer.strip(" \u00b7"), markdown=False), FOOTER_MAX))
    return e


def follow_embed(hit: FollowHit) -> discord.Embed:
    """A standing question answered: the question, the sentence with its article, and how
    long after the article arrived. Articles carry a date, not a time, so the minutes count
    from when it was stored here."""
    arrived = dt.datetime.fromisoformat(hit.ingested_at)
    minutes = max(0, round((dt.datetime.now(dt.UTC) - arrived).total_seconds() / 60))
    e = discord.Embed(title=cut(escape(hit.follow.question), TITLE_MAX), colour=ANSWER_COLOUR,
                      description=f"A new article answers standing question #{hit.follow.id}.")
    name, value = citation_field(hit.citation)
    e.add_field(name=name, value=value, inline=False)
    e.set_footer(text=f"Answered {minutes} minute{'s' * (minutes != 1)} after the article "
                      f"arrived · /follow remove {hit.follow.id} stops this")
    return e


VERDICT_ICONS = {SUPPORTED: "\u2705", DISPUTED: "\u26a0\ufe0f", NOT_FOUND: "\u2754"}


def check_embed(report: CheckReport, author: str = "") -> discord.Embed:
    """A checked message: one field per claim, its verdict, and the sentence relied on."""
    e = discord.Embed(title="Checked against the news", colour=ANSWER_COLOUR,
                      description=cut(f"A message by {escape(author)}", 300) if author else None)
    per = min(FIELD_VALUE_MAX, (EMBED_TOTAL_MAX - 600) // max(1, len(report.verdicts))
              - FIELD_NAME_MAX)
    for i, v in enumerate(report.verdicts, 1):
        icon, label = VERDICT_ICONS[v.verdict], VERDICT_LABELS[v.verdict]
        claim = "> " + cut(escape(v.claim), per // 3).replace("\n", " ")
        lines = [claim]
        if v.verdict == "disputed" and v.reason:
            lines.append(cut(escape(v.reason), 200))
        body = "\n".join(lines)
        if v.citations:
            c = v.citations[0]
            _, cited = citation_field(c, max(120, per - ulen(body) - 1))
            body = f"{body}\n{cited}"
        e.add_field(name=cut(f"{i}. {icon} {label}", FIELD_NAME_MAX), value=cut(body, per),
                    inline=False)
    if report.skipped:
        e.set_footer(text=f"{report.skipped} more sentence(s) not checked: at most "
                          f"{len(report.verdicts)} are")
    return e


def abstain_embed(answer: Answer) -> discord.Embed:
    return discord.Embed(
        title="Not found in the articles",
        description=cut(escape(answer.answer), 1500)
        + "\n\nUse `/sources` to see which articles are stored.",
        colour=ABSTAIN_COLOUR,
    ).set_footer(text=cut(escape(answer.question, markdown=False), 200))


def _bold_cited(p: Passage, citations: Sequence[Citation], room: int) -> str:
    """The passage text, escaped, with each cited sentence in bold; when it is longer than
    ``room``, the part around the cited sentences, so the bold quote is always shown."""
    spans = sorted((c.start - p.start, c.end - p.start) for c in citations
                   if c.article_id == p.article_id and c.library == p.library
                   and p.start <= c.start and c.end <= p.end)

    def render(lo: int, hi: int) -> str:
        out, at = [], lo
        for s, e in spans:
            if s < at or e > hi:
                continue
            out += [escape(p.text[at:s]), "**" + escape(p.text[s:e]) + "**"]
            at = e
        out.append(escape(p.text[at:hi]))
        return (ELLIPSIS if lo else "") + "".join(out) + (ELLIPSIS if hi < len(p.text) else "")

    body = render(0, len(p.text))
    if ulen(body) <= room:
        return body
    if not spans or ulen(render(*spans[0])) > room:  # no quote, or the quote alone is too long
        return cut(escape(p.text), room)  # a cut inside bold would break the markup
    lo, hi = spans[0]
    # Widen around the first quote by whole words on both sides while it fits.
    grown = True
    while grown:
        grown = False
        before = p.text.rfind(" ", 0, max(0, lo - 1)) + 1
        if lo > 0 and ulen(render(before, hi)) <= room:
            lo, grown = before, True
        after = p.text.find(" ", hi + 1)
        after = len(p.text) if after < 0 else after
        if hi < len(p.text) and ulen(render(lo, after)) <= room:
            hi, grown = after, True
    return render(lo, hi)


def passage_embeds(answer: Answer) -> list[discord.Embed]:
    """The retrieved passages for "Show passages", all within one message's limits."""
    if not answer.passages:
        return [discord.Embed(description="No passages were retrieved for this question.")]
    passages = answer.passages[:EMBEDS_MAX]
    per = (EMBED_TOTAL_MAX - 100) // len(passages)
    embeds = []
    for i, p in enumerate(passages, 1):
        title = cut(f"{i}. {escape(p.title)}", min(TITLE_MAX, per // 4))
        byl = byline(p.title, p.source, p.published, p.url, min(300, per // 3))
        room = min(DESCRIPTION_MAX, per - ulen(title) - ulen(byl) - 4)
        body = _bold_cited(p, answer.citations, room)
        embeds.append(discord.Embed(title=title, description=f"{body}\n\n{byl}"))
    return embeds


def sources_embed(rows: Sequence[StoredArticle], page: int, pages: int, total: int,
                  query: str = "") -> discord.Embed:
    title = f"Stored articles matching \u201c{cut(query, 60)}\u201d" if query else "Stored articles"
    e = discord.Embed(title=escape(title), colour=ANSWER_COLOUR)
    lines = [f"{code(r.id)} \u00b7 {byline(r.title, r.source, r.published, r.url, 300)}"
             for r in rows]
    e.description = cut("\n".join(lines) or "No articles stored yet.", DESCRIPTION_MAX)
    e.set_footer(text=f"Page {page + 1} of {max(pages, 1)} \u00b7 {total} articles \u00b7 "
                      "/article ID shows one")
    return e


def article_embed(article, sentences, library: str, lead: int = 3) -> discord.Embed:
    e = discord.Embed(title=cut(escape(article.title), TITLE_MAX), colour=ANSWER_COLOUR)
    if _SAFE_URL.match(article.url or ""):
        e.url = article.url
    e.description = cut(escape(" ".join(s.text for s in sentences[:lead])), 3000)
    for name, value in (("Source", escape(article.source) or "unknown"),
                        ("Published", when(article.published_iso)),
                        ("Place", escape(article.place)),
                        ("Sentences", str(len(sentences))),
                        ("ID", code(article.id)), ("Library", escape(library))):
        if value:
            e.add_field(name=name, value=cut(value, FIELD_VALUE_MAX), inline=True)
    return e


def check_message(embeds: Sequence[discord.Embed], content: str = "") -> None:
    """Refuse a message that would break a Discord limit: a bug here must never reach Discord."""
    problems = []
    if ulen(content) > CONTENT_MAX:
        problems.append("content")
    if len(embeds) > EMBEDS_MAX or sum(embed_size(e) for e in embeds) > EMBED_TOTAL_MAX:
        problems.append("embeds")
    for e in embeds:
        if ulen(e.title or "") > TITLE_MAX or ulen(e.description or "") > DESCRIPTION_MAX:
            problems.append("title/description")
        if len(e.fields) > FIELDS_MAX or any(
                ulen(f.name or "") > FIELD_NAME_MAX or ulen(f.value or "") > FIELD_VALUE_MAX
                for f in e.fields):
            problems.append("fields")
    if problems:
        raise ValueError(f"message over Discord's limits: {', '.join(problems)}")
