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
import stat
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard limits on what one input may cost, checked while reading: over any of them, the
    input becomes one line in the ingest report and the run goes on."""

    max_file_bytes: int = 200_000_000  # a file read whole (a .gz: after decompression)
    max_stream_bytes: int = 4_000_000_000  # a JSONL file, read line by line (decompressed)
    max_record_bytes: int = 10_000_000  # one JSON record or JSONL line
    max_article_chars: int = 2_000_000
    max_json_depth: int = 64
    # HTML is checked in one linear pass before lxml and trafilatura see it (check_markup).
    # Measured on the 2-core AVX2 dev machine (2026-12): a real 24,500-element page took 8 s to
    # extract, 40,000 bare elements 7 s, 2 million attributes 27 s.
    max_html_chars: int = 5_000_000
    max_html_elements: int = 30_000
    max_html_attributes: int = 150_000  # in all
    max_element_attributes: int = 256  # on one element (lxml: 80,000 took a minute)


DEFAULT_LIMITS = Limits()


def shown(path: str | os.PathLike[str]) -> str:
    """A path as text that can be printed and stored: bytes that are not UTF-8 in a file
    name (kept by Python as surrogates) are shown as \\xNN."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", errors="backslashreplace")


# NUL and lone surrogates (JSON's "\ud800", or bytes a file name could not decode) can't be
# stored: SQLite's text functions stop at a NUL, and a surrogate can't be encoded as UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` without NULs, its lone surrogates replaced by U+FFFD, so it can be stored and
    every quote is the exact slice of what was stored."""
    if not _UNSTORABLE.search(text):
        return text
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


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


def check_published(value: Any) -> dt.date | None:
    """A record's own ``published``: absent is fine, a value that is not a real date (or lies
    in the future) is refused rather than silently dropped."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise InputError(f"'published' must be a date like 2022-01-27, not {type(value).__name__}")
    day = parse_date(value)
    if day is None:  # "Thu, 27 Jan 2022 10:00:00 GMT", as feeds and mail write dates
        from email.utils import parsedate_to_datetime

        try:
            day = parsedate_to_datetime(value).date()
        except (TypeError, ValueError, IndexError):
            raise InputError(f"'published' is not a date: {value[:40]!r}") from None
    return day


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
    """Fill what the record lacks from its dateline, and find where the sentences begin. Every
    field is cleaned of what can't be stored (``clean_text``) before offsets are found."""
    text = clean_text(text).strip()
    title, source, url = clean_text(title), clean_text(source), clean_text(url)
    article_id, origin = clean_text(article_id), clean_text(origin)
    authors = [clean_text(a) for a in authors or []]
    if not text:
        raise InputError("no text")
    if len(text) > DEFAULT_LIMITS.max_article_chars:
        raise InputError(f"the article is {len(text):,} characters; the limit is "
                         f"{DEFAULT_LIMITS.max_article_chars:,}")
    # A little slack for time zones; a date beyond that would earn a false recency bonus.
    if published and published > dt.date.today() + dt.timedelta(days=1):
        raise InputError(f"published date {published.isoformat()} is in the future")
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
        origin=shown(path),
        year_hint=name_day.year if name_day else None,
    )
    if article.published is None and name_day:
        article.published = name_day
    return article


def load_html(path: Path, raw: str) -> Article:
    return article_from_html(raw, slug(path.stem), shown(path))


_START_TAG = re.compile(r"<[A-Za-z][^\s/>]*+")
# One attribute as HTML parsers split them: a name (or junk up to the next space), then maybe
# "=" and a value, quoted (which may hold ">") or not. "/" separates attributes as spaces do.
_ATTRIBUTE = re.compile(r"""[\s/]*+(?:[^\s/>"'=]++|["'=][^\s>]*+)"""
                        r"""(?:\s*+=\s*+(?:"[^"]*+"|'[^']*+'|[^\s>]*+))?+""")
_RAW_TEXT = {name: re.compile(f"</{name}", re.IGNORECASE) for name in ("script", "style")}


def check_markup(raw: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse markup that would take the HTML parser minutes, in one pass before it runs: too
    long, too many elements (the extractor's cost grows with them), or too many attributes
    on one element (lxml's duplicate check is quadratic in them: 80,000 took a minute)."""
    if len(raw) > limits.max_html_chars:
        raise InputError(f"the page is {len(raw):,} characters of HTML; the limit is "
                         f"{limits.max_html_chars:,}")
    elements = total = pos = 0
    while True:
        m = _START_TAG.search(raw, pos)
        if m is None:
            return
        elements += 1
        if elements > limits.max_html_elements:
            raise InputError(f"the page has more than {limits.max_html_elements:,} HTML "
                             "elements; the limit keeps parsing time bounded")
        pos, attributes = m.end(), 0
        while pos < len(raw) and raw[pos] != ">":
            a = _ATTRIBUTE.match(raw, pos)
            if a is None:  # only ">" or the end can follow: the tag is over
                break
            attributes += 1
            total += 1
            if attributes > limits.max_element_attributes:
                raise InputError(f"an HTML element has more than "
                                 f"{limits.max_element_attributes:,} attributes; the limit "
                                 "keeps parsing time bounded")
            if total > limits.max_html_attributes:
                raise InputError(f"the page has more than {limits.max_html_attributes:,} "
                                 "HTML attributes; the limit keeps parsing time bounded")
            pos = a.end()
        end_tag = _RAW_TEXT.get(m.group()[1:].lower())
        if end_tag is not None:  # its content is text, not elements: skip to its end tag
            end = end_tag.search(raw, pos)
            if end is None:
                return
            pos = end.start()


def article_from_html(raw: str, article_id: str, origin: str, url: str = "") -> Article:
    """Main text, title, site name, authors, date and canonical URL of an HTML page."""
    import trafilatura

    check_markup(raw)

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


def _text_field(record: dict, key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InputError(f"'{key}' must be text, not {type(value).__name__}")
    return str(value)


def from_record(record: Any, where: str) -> Article:
    """An article from a JSON record with id, title, text, url, published, source (and authors).
    Fields of the wrong type are refused with a message, never stored as Python's repr."""
    if not isinstance(record, dict):
        raise InputError("a record must be a JSON object")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InputError("record has no 'text'")
    text = clean_text(text)
    url, rid = clean_text(_text_field(record, "url")), clean_text(_text_field(record, "id"))
    article_id = rid if rid else (
        url_id(url) if url
        else "text-" + hashlib.sha256(text.encode()).hexdigest()[:16]
    )
    authors = record.get("authors") or []
    if isinstance(authors, str):
        authors = [authors]
    if not isinstance(authors, list) or not all(isinstance(a, str) for a in authors):
        raise InputError("'authors' must be a list of names")
    return finish(
        article_id=article_id,
        text=text,
        title=_text_field(record, "title"),
        source=_text_field(record, "source"),
        published=check_published(record.get("published")),
        url=url,
        authors=authors,
        origin=where,
    )


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth_ok(raw: str, limit: int) -> bool:
    """Whether brackets nest at most ``limit`` deep (strings skipped), checked before parsing:
    Python's parser recurses, and a deep enough document raises RecursionError."""
    if raw.count("[") + raw.count("{") <= limit:
        return True
    depth = 0
    for m in _JSON_TOKEN.finditer(raw):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > limit:
                return False
        elif c in "]}":
            depth -= 1
    return True


def parse_json(raw: str, limits: Limits) -> Any:
    if not json_depth_ok(raw, limits.max_json_depth):
        raise InputError(f"JSON nested more than {limits.max_json_depth} levels deep")
    try:
        return json.loads(raw)
    except RecursionError:
        raise InputError("JSON nested too deeply") from None


def _json_records(path: Path, raw: str, limits: Limits) -> Iterator[Article | IngestFailure]:
    where = shown(path)
    try:
        if len(raw) > limits.max_record_bytes and not raw.lstrip().startswith("["):
            raise InputError(f"the record is {len(raw):,} characters; the limit is "
                             f"{limits.max_record_bytes:,}")
        data = parse_json(raw, limits)
    except json.JSONDecodeError as e:
        yield IngestFailure(where, f"invalid JSON ({e.msg} at line {e.lineno})")
        return
    except InputError as e:
        yield IngestFailure(where, str(e))
        return
    records = data if isinstance(data, list) else [data]
    for i, record in enumerate(records):
        at = f"{where}[{i}]" if isinstance(data, list) else where
        try:
            yield from_record(record, at)
        except InputError as e:
            yield IngestFailure(at, str(e))


def _jsonl_records(path: Path, encoding: str, limits: Limits,
                   expect: tuple[int, int] | None = None) -> Iterator[Article | IngestFailure]:
    """JSONL read line by line (a .gz decompressed as it goes): memory stays at one record,
    an over-long line is skipped without being held, and the whole stream is capped."""
    where, total, cap = shown(path), 0, limits.max_record_bytes
    with _Regular(path, expect) as stream:
        lineno = records = 0
        while True:
            line = stream.readline(cap + 1)
            if not line:
                if not records:
                    yield IngestFailure(where, "empty file")
                return
            lineno += 1
            records += bool(line.strip())
            total += len(line)
            if len(line) > cap and not line.endswith(b"\n"):
                skipped = _skip_line(stream)
                total += skipped
                yield IngestFailure(f"{where}:{lineno}", f"the record is over the {cap:,}-byte"
                                                         " limit")
            elif line.strip():
                try:
                    text = decode(line, where, encoding).strip("\n")
                except InputError as e:
                    yield IngestFailure(f"{where}:{lineno}", str(e))
                else:
                    yield _record(text, f"{where}:{lineno}", limits)
            if total > limits.max_stream_bytes:
                yield IngestFailure(where, f"stopped after {limits.max_stream_bytes:,} bytes "
                                           "(the limit for one file)")
                return


def _skip_line(stream) -> int:
    skipped = 0
    while True:
        part = stream.readline(1 << 20)
        skipped += len(part)
        if not part or part.endswith(b"\n"):
            return skipped


def _record(line: str, where: str, limits: Limits) -> Article | IngestFailure:
    """One JSONL line; whatever is wrong with it is that line's failure, never the run's."""
    try:
        if len(line) > limits.max_record_bytes:
            raise InputError(f"the record is {len(line):,} characters; the limit is "
                             f"{limits.max_record_bytes:,}")
        return from_record(parse_json(line, limits), where)
    except json.JSONDecodeError as e:
        return IngestFailure(where, f"invalid JSON ({e.msg} at column {e.colno})")
    except InputError as e:
        return IngestFailure(where, str(e))


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for compound in (".jsonl.gz", ".json.gz"):
        if name.endswith(compound):
            return compound
    return path.suffix.lower()


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


class _Regular:
    """A regular file opened for reading (a .gz: decompressed as read); anything else is
    refused before it is opened, so a FIFO can't hang the run. ``expect`` is the (device,
    inode) that load_file checked: a file swapped since then is refused, not read."""

    def __init__(self, path: Path, expect: tuple[int, int] | None = None) -> None:
        self.path = path
        try:
            st = path.stat()  # follows symlinks: a FIFO behind a link is refused too
        except OSError as e:
            raise InputError(f"cannot read: {e.strerror or e}") from None
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{_kind(st.st_mode)}, not a regular file; only files and "
                             "directories are read")
        self.size = st.st_size
        self.key = (st.st_dev, st.st_ino)
        if expect is not None and self.key != expect:
            raise InputError("the file changed while being read")

    def __enter__(self):
        # O_NONBLOCK: should the file be swapped for a FIFO after the check, open() can't hang.
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._raw = os.fdopen(fd, "rb")
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != self.key:  # swapped between the check and the open
            self._raw.close()
            raise InputError("the file changed while being read")
        if self.path.name.lower().endswith(".gz"):
            return gzip.GzipFile(fileobj=self._raw)
        return self._raw

    def __exit__(self, *exc) -> None:
        self._raw.close()


def _refusal(path: Path, real: Path, root: Path | None, protected: Iterable[Path]
             ) -> str | None:
    """Why ``path`` (which resolves to ``real``) may not be read as an article, or None. In
    a directory that was named, a symlink is followed only to a file inside that directory;
    a file named directly is read wherever it is. Never: a hidden file (a dotfile such as
    .env) or anything in the data dir (settings, stores, logs)."""
    if root is not None:
        base = Path(os.path.realpath(root))
        if not real.is_relative_to(base):
            return "a symlink to a file outside the directory named; not followed"
        if any(part.startswith(".") for part in real.relative_to(base).parts):
            return "a symlink to a hidden file (its name starts with a dot); not followed"
    elif path.name.startswith(".") or real.name.startswith("."):
        return "a hidden file (its name starts with a dot); not read as an article"
    for p in protected:
        if real.is_relative_to(os.path.realpath(p)):
            return "inside newsbot's data directory; not read as an article"
    return None


def read_limited(path: Path, limits: Limits, expect: tuple[int, int] | None = None) -> bytes:
    """The file's bytes (a .gz decompressed), refusing anything but a regular file, and any
    file (or decompressed stream) over the size limit, while reading: neither /dev/zero nor a
    gzip bomb is ever held in memory."""
    cap = limits.max_file_bytes
    gz = path.name.lower().endswith(".gz")
    regular = _Regular(path, expect)
    if regular.size > cap and not gz:
        raise InputError(f"the file is {regular.size:,} bytes; the limit is {cap:,}")
    with regular as stream:
        data = stream.read(cap + 1)
    if len(data) > cap:
        raise InputError(f"{'decompressed, it' if gz else 'it'} is over the {cap:,}-byte "
                         "limit")
    return data


def load_file(path: Path, encoding: str = "utf-8", limits: Limits = DEFAULT_LIMITS, *,
              root: Path | None = None, protected: Iterable[Path] = ()
              ) -> Iterator[Article | IngestFailure]:
    """The articles of one file; ``root`` is the directory it was found in (None: named
    directly), ``protected`` the directories never read (see _refusal)."""
    suffix = _suffix(path)
    where = shown(path)
    try:
        # A device or a FIFO is named as such, whatever its name says.
        key = _Regular(path).key
        real = Path(os.path.realpath(path, strict=True))
        refused = _refusal(path, real, root, protected)
        if refused:
            raise InputError(refused)
        st = real.stat()
        if (st.st_dev, st.st_ino) != key:  # swapped while it was checked
            raise InputError("the file changed while being read")
        if suffix not in SUPPORTED:
            raise InputError(f"unsupported file type {suffix or '(none)'}; use one of "
                             + ", ".join(SUPPORTED))
        if suffix in (".jsonl", ".jsonl.gz"):
            yield from _jsonl_records(path, encoding, limits, key)
            return
        data = read_limited(path, limits, key)
        if not data.strip():
            raise InputError("empty file")
        raw = decode(data, where, encoding)
        if suffix in JSON_SUFFIXES:
            yield from _json_records(path, raw, limits)
        elif suffix in HTML_SUFFIXES:
            yield load_html(path, raw)
        else:
            yield load_text(path, raw)
    except InputError as e:
        yield IngestFailure(where, str(e))
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        yield IngestFailure(where, f"cannot read: {getattr(e, 'strerror', None) or e}")


def iter_articles(
    paths: Iterable[str | os.PathLike[str]], encoding: str = "utf-8",
    limits: Limits = DEFAULT_LIMITS, protected: Iterable[str | os.PathLike[str]] = (),
) -> Iterator[Article | IngestFailure]:
    """Articles from files and directories (recursively, supported types only, sorted).
    Only regular files are read: FIFOs, devices and sockets are refused, named or linked; a
    symlink in a directory only to a file inside it; never a dotfile, nor anything under
    ``protected`` (the data dir)."""
    protected = [Path(p) for p in protected]
    for p in paths:
        path = Path(p)
        if path.is_dir():
            try:
                found = sorted(
                    f for f in path.rglob("*")
                    if _suffix(f) in SUPPORTED and not f.is_dir()
                    and not any(part.startswith(".") for part in f.relative_to(path).parts)
                )
            except OSError as e:
                yield IngestFailure(shown(path), f"cannot list directory: {e.strerror or e}")
                continue
            for f in found:
                yield from load_file(f, encoding, limits, root=path, protected=protected)
        elif path.exists() or path.is_symlink():
            yield from load_file(path, encoding, limits, protected=protected)
        else:
            yield IngestFailure(shown(path), "no such file or directory")


MIN_PAGE_TEXT = 80


def is_url(text: str) -> bool:
    return "://" in str(text)[:12]


def host_of(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def same_site(url: str, fetched: str) -> bool:
    """``url``'s host is the fetched host or a subdomain of it."""
    host, base = host_of(url), host_of(fetched)
    return bool(host and base) and (host == base or host.endswith("." + base))


def load_url(url: str, *, allow_private: bool, timeout_s: float, max_bytes: int,
             max_redirects: int, **fetch_options: str) -> Article:
    """An article from a web page: fetched within the limits, its main text extracted."""
    from retrieval.fetch import HTML_TYPES, fetch, is_fetchable

    page = fetch(url, allow_private=allow_private, timeout_s=timeout_s, max_bytes=max_bytes,
                 max_redirects=max_redirects, accept=HTML_TYPES, **fetch_options)
    article = article_from_html(page.text, url_id(page.url), page.url, page.url)
    if len(article.text.strip()) < MIN_PAGE_TEXT:  # a menu or a cookie wall, not an article
        raise InputError(f"no article text found on the page (only "
                         f"{len(article.text.strip())} characters)")
    if article.url != page.url:
        # A canonical URL with user@ names one host and is another's (userinfo fools the
        # same-site test), and one that is no fetchable URL names nothing.
        if is_fetchable(article.url) and same_site(article.url, page.url):
            # A canonical URL on the same site names the article better than the one asked.
            article.id = url_id(article.url)
        else:
            # A page may not claim another site's URL or name: it would replace that site's
            # article and be shown as it.
            article.url, article.source = page.url, host_of(page.url)
    return article
