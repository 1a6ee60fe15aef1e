"""Read articles from files (.txt, .md, .html, .json, .jsonl, .jsonl.gz) and directories.

Loading never raises for a bad input: each one becomes an ``IngestFailure`` with a reason a user can
act on, so one broken file never costs the rest of a batch.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from retrieval.models import Article, IngestFailure

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".json", ".jsonl", ".jsonl.gz", ".json.gz"}
SUPPORTED = sorted(TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES)

_MONTHS = {
    m: i
    for i, names in enumerate(
        [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
         ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
         ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
         ("dec", "december")],
        start=1,
    )
    for m in names
}
_MONTH_RE = r"(?P<month>[A-Z][a-z]{2,8})\.?"
_DASH = r"\s*[-\u2013\u2014]+\s*"
_DATELINES = [
    # London. January 27. INTERFAX -
    re.compile(
        rf"^(?P<place>[A-Z][\w'. -]{{1,40}}?)\.\s+{_MONTH_RE}\s+(?P<day>\d{{1,2}})"
        rf"(?:,?\s+(?P<year>\d{{4}}))?\.\s+(?P<source>[A-Z][A-Za-z0-9&'. ]{{1,40}}?){_DASH}"
    ),
    # LONDON, Jan 27 (Reuters) -
    re.compile(
        rf"^(?P<place>[A-Z][\w'. -]{{1,40}}?),\s+{_MONTH_RE}\s+(?P<day>\d{{1,2}})"
        rf"(?:,?\s+(?P<year>\d{{4}}))?\s+\((?P<source>[^)]{{1,40}})\){_DASH}"
    ),
    # WASHINGTON (AP) -
    re.compile(rf"^(?P<place>[A-Z][A-Z'. -]{{1,40}}?(?:,\s+[A-Z][a-z.]{{1,8}})?)\s+"
               rf"\((?P<source>[^)]{{1,40}})\){_DASH}"),
    # GARDINER, Mont. -   (place only, in capitals)
    re.compile(rf"^(?P<place>[A-Z][A-Z'. -]{{2,40}}?(?:,\s+[A-Z][a-z.]{{1,8}})?)"
               rf"{_DASH}(?=[A-Z\"'])"),
]
_DATE_IN_NAME = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)]*$")


class InputError(ValueError):
    """A user's input that cannot be used; the message is shown as is."""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80] or "article"


def _source_name(raw: str) -> str:
    raw = raw.strip()
    # INTERFAX -> Interfax, but keep short acronyms such as AP, AFP, TASS
    return raw.title() if raw.isupper() and len(raw) > 4 else raw


def _date(year: int | None, month: str | None, day: str | None) -> dt.date | None:
    if not (year and month and day):
        return None
    m = _MONTHS.get(month.lower().rstrip("."))
    try:
        return dt.date(year, m, int(day)) if m else None
    except ValueError:
        return None


def parse_date(value: Any) -> dt.date | None:
    """Leading YYYY-MM-DD of an ISO date or timestamp; None when absent or unreadable."""
    if not value:
        return None
    m = re.match(r"\s*(\d{4})-(\d{2})-(\d{2})", str(value))
    if not m:
        return None
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def parse_dateline(text: str, start: int = 0, year: int | None = None) -> dict[str, Any]:
    """Place, date and source from a dateline at ``text[start:]``; ``body_start`` is where the
    first sentence begins."""
    head = text[start : start + 160]
    for pattern in _DATELINES:
        m = pattern.match(head)
        if not m:
            continue
        groups = m.groupdict()
        y = int(groups["year"]) if groups.get("year") else year
        return {
            "place": groups["place"].strip().rstrip(","),
            "source": _source_name(groups.get("source") or ""),
            "published": _date(y, groups.get("month"), groups.get("day")),
            "body_start": start + m.end(),
        }
    return {"body_start": start}


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---", 4)
    if end < 0:
        return {}, text
    meta = {}
    for line in text[4:end].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            meta[key.strip().lower()] = value.strip().strip("\"'")
    return meta, text[end + 4 :].lstrip("\n")


def _is_headline(line: str) -> bool:
    line = line.strip()
    return (
        0 < len(line) <= 200
        and not _SENTENCE_END.search(line)
        and parse_dateline(line)["body_start"] == 0
    )


def _lead_title(text: str, start: int) -> str:
    lead = text[start:].strip().split("\n", 1)[0]
    if len(lead) <= 100:
        return lead
    return lead[:100].rsplit(" ", 1)[0] + "\u2026"


def decode(data: bytes, where: str, encoding: str = "utf-8") -> str:
    if b"\x00" in data[:8192]:
        raise InputError("binary file, not text (it contains NUL bytes)")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise InputError(
            f"not valid {encoding} (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "convert it to UTF-8, or pass --encoding (for example latin-1)"
        ) from None
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")


def finish(
    *,
    article_id: str,
    text: str,
    title: str = "",
    source: str = "",
    published: dt.date | None = None,
    url: str = "",
    authors: list[str] | None = None,
    origin: str = "",
    year_hint: int | None = None,
) -> Article:
    """Fill what the record lacks from its dateline, and find where the sentences begin."""
    text = text.strip()
    if not text:
        raise InputError("no text")
    # Records' own fields win; the dateline fills the gaps.
    year = published.year if published else year_hint
    dl = parse_dateline(text, 0, year)
    return Article(
        id=article_id,
        title=title.strip() or _lead_title(text, dl["body_start"]),
        text=text,
        source=source.strip() or dl.get("source", ""),
        published=published or dl.get("published"),
        url=url.strip(),
        place=dl.get("place", ""),
        authors=authors or [],
        origin=origin,
        body_start=dl["body_start"],
    )


def load_text(path: Path, raw: str) -> Article:
    meta, text = _front_matter(raw)
    if not text.strip():
        raise InputError("empty file")
    lines = text.lstrip("\n").split("\n", 1)
    first = lines[0].lstrip("#").strip() if path.suffix.lower() != ".txt" else lines[0].strip()
    title = meta.get("title", "")
    if not title and len(lines) > 1 and lines[1].strip() and _is_headline(lines[0].lstrip("# ")):
        title, text = first, lines[1]
    name_date = _DATE_IN_NAME.search(path.name)
    name_day = parse_date(name_date.group()) if name_date else None
    published = parse_date(meta.get("published") or meta.get("date"))
    article = finish(
        article_id=meta.get("id") or slug(path.stem),
        text=text,
        title=title,
        source=meta.get("source", ""),
        published=published,
        url=meta.get("url", ""),
        authors=[a.strip() for a in meta.get("authors", "").split(",") if a.strip()],
        origin=str(path),
        year_hint=name_day.year if name_day else None,
    )
    if article.published is None and name_day:
        article.published = name_day
    return article


def load_html(path: Path, raw: str) -> Article:
    return article_from_html(raw, slug(path.stem), str(path))


def article_from_html(raw: str, article_id: str, origin: str, url: str = "") -> Article:
    """Main text, title, site name, authors, date and canonical URL of an HTML page."""
    import trafilatura

    doc = trafilatura.bare_extraction(
        raw, with_metadata=True, include_comments=False, include_tables=False, url=url or None
    )
    if doc is None or not (doc.text or "").strip():
        raise InputError("no article text found in the HTML")
    text = doc.text.strip()
    # trafilatura keeps the <h1>; it is the title, not the first sentence.
    if doc.title and text.startswith(doc.title.strip()):
        text = text[len(doc.title.strip()) :]
    return finish(
        article_id=article_id,
        text=text,
        title=doc.title or "",
        source=doc.sitename or "",
        published=parse_date(doc.date),
        url=doc.url or url,
        authors=[a.strip() for a in (doc.author or "").split(";") if a.strip()],
        origin=origin,
    )


def url_id(url: str) -> str:
    """The id of an article known by its URL (JSON records without an id get the same)."""
    return "url-" + hashlib.sha256(url.encode()).hexdigest()[:16]


def from_record(record: Any, where: str) -> Article:
    """An article from a JSON record with id, title, text, url, published, source (and authors)."""
    if not isinstance(record, dict):
        raise InputError("a record must be a JSON object")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InputError("record has no 'text'")
    url = str(record.get("url") or "")
    rid = record.get("id")
    article_id = str(rid) if rid not in (None, "") else (
        url_id(url) if url
        else "text-" + hashlib.sha256(text.encode()).hexdigest()[:16]
    )
    authors = record.get("authors") or []
    if isinstance(authors, str):
        authors = [authors]
    return finish(
        article_id=article_id,
        text=text,
        title=str(record.get("title") or ""),
        source=str(record.get("source") or ""),
        published=parse_date(record.get("published")),
        url=url,
        authors=[str(a) for a in authors],
        origin=where,
    )


def _json_records(path: Path, raw: str) -> Iterator[Article | IngestFailure]:
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):
        for lineno, line in enumerate(raw.split("\n"), start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                yield from_record(json.loads(line), where)
            except json.JSONDecodeError as e:
                yield IngestFailure(where, f"invalid JSON ({e.msg} at column {e.colno})")
            except InputError as e:
                yield IngestFailure(where, str(e))
        return
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        yield IngestFailure(str(path), f"invalid JSON ({e.msg} at line {e.lineno})")
        return
    records = data if isinstance(data, list) else [data]
    for i, record in enumerate(records):
        where = f"{path}[{i}]" if isinstance(data, list) else str(path)
        try:
            yield from_record(record, where)
        except InputError as e:
            yield IngestFailure(where, str(e))


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for compound in (".jsonl.gz", ".json.gz"):
        if name.endswith(compound):
            return compound
    return path.suffix.lower()


def load_file(path: Path, encoding: str = "utf-8") -> Iterator[Article | IngestFailure]:
    suffix = _suffix(path)
    try:
        data = path.read_bytes()
        if suffix.endswith(".gz"):
            data = gzip.decompress(data)
        if not data.strip():
            raise InputError("empty file")
        raw = decode(data, str(path), encoding)
        if suffix in JSON_SUFFIXES:
            yield from _json_records(path, raw)
        elif suffix in HTML_SUFFIXES:
            yield load_html(path, raw)
        elif suffix in TEXT_SUFFIXES:
            yield load_text(path, raw)
        else:
            raise InputError(f"unsupported file type {suffix or '(none)'}; use one of "
                             + ", ".join(SUPPORTED))
    except InputError as e:
        yield IngestFailure(str(path), str(e))
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        yield IngestFailure(str(path), f"cannot read: {getattr(e, 'strerror', None) or e}")


def iter_articles(
    paths: Iterable[str | os.PathLike[str]], encoding: str = "utf-8"
) -> Iterator[Article | IngestFailure]:
    """Articles from files and directories (recursively, supported types only, sorted)."""
    for p in paths:
        path = Path(p)
        if path.is_dir():
            try:
                found = sorted(
                    f for f in path.rglob("*")
                    if (f.is_file() or f.is_symlink()) and _suffix(f) in SUPPORTED
                    and not any(part.startswith(".") for part in f.relative_to(path).parts)
                )
            except OSError as e:
                yield IngestFailure(str(path), f"cannot list directory: {e.strerror or e}")
                continue
            for f in found:
                yield from load_file(f, encoding)
        elif path.exists() or path.is_symlink():
            yield from load_file(path, encoding)
        else:
            yield IngestFailure(str(path), "no such file or directory")


MIN_PAGE_TEXT = 80


def is_url(text: str) -> bool:
    return "://" in str(text)[:12]


def load_url(url: str, *, allow_private: bool, timeout_s: float, max_bytes: int,
             max_redirects: int) -> Article:
    """An article from a web page: fetched within the limits, its main text extracted."""
    from retrieval.fetch import HTML_TYPES, fetch

    page = fetch(url, allow_private=allow_private, timeout_s=timeout_s, max_bytes=max_bytes,
                 max_redirects=max_redirects, accept=HTML_TYPES)
    article = article_from_html(page.text, url_id(page.url), page.url, page.url)
    if len(article.text.strip()) < MIN_PAGE_TEXT:  # a menu or a cookie wall, not an article
        raise InputError(f"no article text found on the page (only "
                         f"{len(article.text.strip())} characters)")
    if article.url != page.url:  # a canonical URL names the article better than the one asked
        article.id = url_id(article.url)
    return article
