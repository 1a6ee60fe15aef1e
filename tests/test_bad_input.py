"""Bad input: each gives a clear message, and nothing already stored is lost."""

from __future__ import annotations

import json
import os

import pytest

from retrieval.errors import NewsbotError, QuestionError, StoreError
from tests.conftest import LAMBRECHT, REFERENCE_QUESTION, SAMPLES, write


@pytest.fixture
def stocked(make_bot):
    nb = make_bot()
    nb.ingest([SAMPLES])
    return nb


def unchanged(nb, before):
    assert nb.catalog.counts() == before
    assert LAMBRECHT in nb.ask(REFERENCE_QUESTION).citations[0].quote


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question(stocked, question):
    with pytest.raises(QuestionError, match="the question is empty"):
        stocked.ask(question)


def test_huge_question(stocked):
    with pytest.raises(QuestionError, match=r"10,000 characters long; the limit is 1,000"):
        stocked.ask("x" * 10_000)


def test_bad_dates_and_k(stocked):
    with pytest.raises(QuestionError, match="--since must be a date"):
        stocked.ask("sanctions", since="last week")
    with pytest.raises(QuestionError, match="--since is after --until"):
        stocked.ask("sanctions", since="2022-02-01", until="2022-01-01")
    with pytest.raises(QuestionError, match="k must be between"):
        stocked.ask("sanctions", k=0)


def ingest_one(nb, path, **kw):
    before = nb.catalog.counts()
    report = nb.ingest([path], **kw)
    unchanged(nb, before)
    assert (report.added, report.updated) == (0, 0)
    [failure] = report.failed
    return failure


def test_empty_file(stocked, tmp_path):
    f = ingest_one(stocked, write(tmp_path / "empty.txt", ""))
    assert f.reason == "empty file" and f.where.endswith("empty.txt")
    assert ingest_one(stocked, write(tmp_path / "blank.md", "\n  \n")).reason == "empty file"


def test_binary_file(stocked, tmp_path):
    f = ingest_one(stocked, write(tmp_path / "photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR"))
    assert f.reason == "binary file, not text (it contains NUL bytes)"


def test_latin1_file_is_refused_clearly_then_read_with_encoding(stocked, tmp_path):
    path = write(tmp_path / "cafe.txt",
                 "Caf\xe9 prices\nParis. May 3. NEWSBOT SAMPLE WIRE - A caf\xe9 cr\xe8me now "
                 "costs four euros in Paris.".encode("latin-1"))
    f = ingest_one(stocked, path)
    assert "not valid utf-8 (byte 0xe9 at offset 3)" in f.reason and "--encoding" in f.reason
    report = stocked.ingest([path], encoding="latin-1")
    assert report.added == 1
    answer = stocked.ask("how much does a café crème cost in Paris?")
    assert "café crème" in answer.answer
    # Offsets count characters, not bytes, all the way from SQLite to the quote.
    c = answer.citations[0]
    assert stocked.catalog.load("global", c.article_id)[0].text[c.start:c.end] == c.quote


def test_malformed_jsonl_line_is_reported_and_the_rest_ingested(stocked, tmp_path):
    good = {"id": "g1", "title": "Ferry", "text": "The island ferry was cancelled by storms.",
            "source": "Example"}
    lines = [json.dumps(good), "{not json", json.dumps({**good, "id": "g2", "text": ""}),
             json.dumps({**good, "id": "g3", "text": "Snow closed the mountain pass."})]
    before = stocked.catalog.counts()["articles"]
    report = stocked.ingest([write(tmp_path / "feed.jsonl", "\n".join(lines))])
    assert report.added == 2
    assert [(f.where.rsplit("/", 1)[1], f.reason.split(" (")[0]) for f in report.failed] == [
        ("feed.jsonl:2", "invalid JSON"), ("feed.jsonl:3", "record has no 'text'")]
    assert stocked.catalog.counts()["articles"] == before + 2


def test_unsupported_and_missing_paths(stocked, tmp_path):
    f = ingest_one(stocked, write(tmp_path / "report.pdf", b"%PDF-1.4"))
    assert f.reason.startswith("unsupported file type .pdf")
    f = ingest_one(stocked, tmp_path / "nowhere.txt")
    assert f.reason == "no such file or directory"


def test_directory_with_unreadable_files(stocked, tmp_path):
    folder = tmp_path / "in"
    write(folder / "good.txt", "Ferry news\nThe island ferry was cancelled by storms today.")
    (folder / "gone.txt").symlink_to(tmp_path / "deleted-long-ago.txt")
    before = stocked.catalog.counts()["articles"]
    report = stocked.ingest([folder])
    assert report.added == 1
    [f] = report.failed
    assert f.where.endswith("gone.txt") and f.reason.startswith("cannot read: ")
    assert stocked.catalog.counts()["articles"] == before + 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_file_without_read_permission(stocked, tmp_path):
    path = write(tmp_path / "secret.txt", "Title\nA sentence.")
    path.chmod(0)
    assert ingest_one(stocked, path).reason == "cannot read: Permission denied"


def test_data_dir_that_cannot_be_created(make_bot, tmp_path):
    blocker = write(tmp_path / "a-file", "x")
    with pytest.raises(StoreError, match=r"cannot create the data directory .*a-file/store"):
        make_bot(data_dir=blocker / "store")


def test_store_that_cannot_be_opened(make_bot, tmp_path):
    data = tmp_path / "broken"
    write(data / "catalog.sqlite3", b"this is not a database, just some bytes" * 100)
    with pytest.raises(StoreError, match=r"cannot open the catalog .*catalog\.sqlite3"):
        make_bot(data_dir=data)


def test_vector_store_that_cannot_be_opened(make_bot, tmp_path):
    data = tmp_path / "broken-chroma"
    write(data / "chroma" / "chroma.sqlite3", b"garbage" * 1000)
    nb = make_bot(data_dir=data)
    with pytest.raises(StoreError, match="cannot open the vector store"):
        nb.ingest([SAMPLES])


def test_a_store_of_another_embedding_model_is_refused(make_bot, tmp_path):
    data = tmp_path / "data"
    nb = make_bot(data)
    nb.ingest([SAMPLES])
    assert nb.catalog.get_meta("embedding_model") == "all-MiniLM-L6-v2 (packaged)"
    other = make_bot(data, embedding_model=str(tmp_path / "models" / "e5-small"))
    said = (r"made by the embedding model all-MiniLM-L6-v2 \(packaged\), but "
            r"NEWSBOT_EMBEDDING_MODEL is e5-small: set it back, or use a new NEWSBOT_DATA_DIR")
    with pytest.raises(StoreError, match=said):
        other.ask(REFERENCE_QUESTION)
    with pytest.raises(StoreError, match=said):
        other.ingest([SAMPLES])
    # Nothing was written: the store still answers with its own model, named either way.
    from retrieval.embed import default_model_path

    assert LAMBRECHT in make_bot(data).ask(REFERENCE_QUESTION).citations[0].quote
    same = make_bot(data, embedding_model=default_model_path())
    assert LAMBRECHT in same.ask(REFERENCE_QUESTION).citations[0].quote


def test_asking_an_empty_store_says_what_to_do(make_bot):
    with pytest.raises(NewsbotError, match=r"no articles stored in global .*newsbot ingest"):
        make_bot().require_articles(["global"])


def test_bad_library_name(stocked):
    with pytest.raises(NewsbotError, match="invalid library name"):
        stocked.ingest([SAMPLES], library="../etc")
