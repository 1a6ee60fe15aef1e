"""Loaders and splitting: datelines, headlines, HTML, JSON records, directories, offsets."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest

from retrieval.ingest import iter_articles, parse_dateline
from retrieval.models import Article, IngestFailure
from retrieval.split import make_chunks, split_sentences
from tests.conftest import SAMPLES, write


def load(*paths: Path) -> list[Article | IngestFailure]:
    return list(iter_articles(paths))


def one(path: Path) -> Article:
    [a] = load(path)
    assert isinstance(a, Article), a
    return a


@pytest.mark.parametrize(("line", "place", "source", "date", "rest"), [
    ("London. January 27. INTERFAX - British Defense Minister Ben Wallace will soon meet",
     "London", "Interfax", dt.date(2022, 1, 27), "British Defense"),
    ("LONDON, Jan 27 (Reuters) - Britain said on Thursday", "LONDON", "Reuters",
     dt.date(2022, 1, 27), "Britain said"),
    ("Moscow. March 3, 2021. TASS - Talks began", "Moscow", "TASS", dt.date(2021, 3, 3),
     "Talks began"),
    ("WASHINGTON (AP) \u2014 The Senate voted", "WASHINGTON", "AP", None, "The Senate"),
    ("GARDINER, Mont. \u2013 Yellowstone National Park officials assessed", "GARDINER, Mont.",
     "", None, "Yellowstone"),
])
def test_datelines(line, place, source, date, rest):
    dl = parse_dateline(line, 0, 2022)
    assert dl["place"] == place
    assert dl["source"] == source
    assert dl.get("published") == date
    assert line[dl["body_start"]:].startswith(rest)


def test_no_dateline_in_ordinary_sentences():
    for line in ("The talks lasted five hours.", "Berlin is the capital - of Germany.",
                 "NATO allies met on Tuesday."):
        assert parse_dateline(line)["body_start"] == 0


def test_seed_article_dateline_is_not_glued_to_first_sentence():
    a = one(SAMPLES / "interfax-wallace-2022-01-27.txt")
    assert (a.source, a.place, a.published) == ("Interfax", "London", dt.date(2022, 1, 27))
    sentences = split_sentences(a.id, a.text, a.body_start)
    assert sentences[0].text.startswith("British Defense Minister Ben Wallace will soon meet")
    assert "INTERFAX" not in sentences[0].text
    # No headline line: the title comes from the lead sentence.
    assert a.title.startswith("British Defense Minister Ben Wallace")


def test_headline_becomes_title_and_year_comes_from_file_name(tmp_path):
    a = one(write(tmp_path / "2021-06-02-talks.txt",
                  "Ministers meet in Oslo\nOslo. June 2. NEWSBOT SAMPLE WIRE - Ministers met.\n"))
    assert a.title == "Ministers meet in Oslo"
    assert a.published == dt.date(2021, 6, 2)
    assert (a.source, a.place) == ("Newsbot Sample Wire", "Oslo")
    assert a.text.startswith("Oslo. June 2.")


def test_markdown_heading_and_front_matter(tmp_path):
    a = one(write(tmp_path / "story.md", "---\nid: my-story\nsource: Example Times\n"
                  "published: 2023-04-05\nurl: https://example.org/s\n---\n"
                  "# A *Markdown* headline\n\nFirst sentence here. Second one.\n"))
    assert (a.id, a.source, a.url) == ("my-story", "Example Times", "https://example.org/s")
    assert a.published == dt.date(2023, 4, 5)
    assert a.title == "A *Markdown* headline"
    assert [s.text for s in split_sentences(a.id, a.text)] == ["First sentence here.",
                                                               "Second one."]


def test_html_main_text_title_date_and_author():
    a = one(SAMPLES / "2022-01-20-polish-minister-munich.html")
    assert a.title == "Polish defence minister meets Bavarian officials in Munich"
    assert a.published == dt.date(2022, 1, 20)
    assert a.source == "Newsbot Sample Wire"
    assert a.url == "https://example.org/newsbot-samples/polish-minister-munich"
    assert a.authors == ["Newsbot sample desk"]
    assert a.text.startswith("Polish Defence Minister Marek Zielinski met")
    assert "Subscribe" not in a.text and "Home" not in a.text


def _record(i: int, **extra) -> dict:
    return {"id": f"r{i}", "title": f"Record {i}", "text": f"Record {i} says hello. It ends.",
            "url": f"https://example.org/{i}", "published": "2024-02-0" + str(i),
            "source": "Example", **extra}


def test_json_jsonl_and_gzip_records(tmp_path):
    write(tmp_path / "one.json", json.dumps(_record(1)))
    write(tmp_path / "list.json", json.dumps([_record(2), _record(3)]))
    write(tmp_path / "many.jsonl", "\n".join(json.dumps(_record(i)) for i in (4, 5)) + "\n")
    (tmp_path / "many.jsonl.gz").write_bytes(gzip.compress(
        (json.dumps(_record(6)) + "\n").encode()))
    got = {a.id: a for a in load(tmp_path)}
    assert set(got) == {f"r{i}" for i in range(1, 7)}
    assert got["r6"].published == dt.date(2024, 2, 6)
    assert got["r4"].url == "https://example.org/4" and got["r4"].source == "Example"


def test_record_without_id_gets_a_stable_one(tmp_path):
    rec = _record(1)
    del rec["id"]
    path = write(tmp_path / "a.jsonl", json.dumps(rec) + "\n")
    assert one(path).id == one(path).id != ""


def test_directories_are_read_recursively_and_skip_other_files(tmp_path):
    write(tmp_path / "a" / "b" / "deep.txt", "Deep\nA sentence in depth. Another.")
    write(tmp_path / "a" / "notes.docx", "ignored")
    write(tmp_path / "a" / ".hidden" / "x.txt", "Hidden\nNot read.")
    assert [a.id for a in load(tmp_path)] == ["deep"]


def test_sentence_offsets_are_exact_on_every_sample():
    for a in load(SAMPLES):
        assert isinstance(a, Article)
        sentences = split_sentences(a.id, a.text, a.body_start)
        assert sentences
        for i, s in enumerate(sentences):
            assert s.index == i and a.text[s.start:s.end] == s.text
            assert s.text == s.text.strip()
        assert [s.start for s in sentences] == sorted(s.start for s in sentences)


def test_overlong_sentence_is_split_with_exact_offsets():
    text = "Items: " + "; ".join(f"item number {i} is listed here" for i in range(80)) + "."
    sentences = split_sentences("x", text, 0, max_chars=200)
    assert len(sentences) > 5
    for s in sentences:
        assert len(s.text) <= 200 and text[s.start:s.end] == s.text


def test_chunks_follow_sentence_boundaries_with_overlap():
    text = " ".join(f"Sentence {i} is here." for i in range(12))
    sentences = split_sentences("x", text)
    chunks = make_chunks("x", text, sentences, size=5, overlap=2)
    assert [(c.first_sentence, c.last_sentence) for c in chunks] == [(0, 4), (3, 7), (6, 10),
                                                                     (9, 11)]
    for c in chunks:
        assert c.start == sentences[c.first_sentence].start
        assert c.end == sentences[c.last_sentence].end
        assert text[c.start:c.end] == c.text
