"""Store integrity regressions (issue 23), each reproduced as it was found: a replace never hides
the article it replaces, not even across a SIGKILL; one huge article can't hold the writer; no
record's text aborts a run or empties a quote; a lost vector store is noticed and repaired."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from retrieval.models import Article
from tests.conftest import LAMBRECHT, REFERENCE_QUESTION, ROOT, SAMPLES, write

QUESTION = "why did the Kiel ferry crews strike?"
OLD = "The harbour ferry crews in Kiel went on strike over rosters on Thursday."
NEW = "The harbour ferry crews in Kiel went on strike over unpaid overtime on Thursday."


def story(text: str, extra: int = 0) -> str:
    """A record of the Kiel story; ``extra`` sentences of filler make its embedding slow."""
    filler = " ".join(f"Dock {i} reported {i % 7 + 2} late sailings that week." for i in
                      range(extra))
    return json.dumps({"id": "kiel", "title": "Kiel ferry strike", "text": f"{text} {filler}",
                       "source": "Test Wire", "published": "2023-05-04"})


def cited(nb, question: str = QUESTION, mode: str = "hybrid") -> str:
    answer = nb.ask(question, mode=mode)
    assert answer.citations, answer.answer
    c = answer.citations[0]
    assert c.quote == nb.catalog.text_of(c.library, c.article_id)[c.start:c.end]
    return c.quote


class Gated:
    """The real embedder, holding every batch until released: a re-embed that takes as long
    as the test needs."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def embed(self, texts: list[str]):
        self.entered.set()
        assert self.release.wait(120), "never released"
        return self.inner.embed(texts)


def staged(data_dir) -> int:
    db = sqlite3.connect(f"file:{data_dir / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT COUNT(*) FROM staged_articles").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        db.close()


# -- a replace keeps the old version visible until the new one is ready -----------------------
def test_an_update_stays_answerable_throughout_a_slow_reembed(make_bot, embedder, tmp_path):
    data = tmp_path / "data"
    writer = make_bot(data)
    writer.ingest([write(tmp_path / "v1.jsonl", story(OLD))])
    gate = Gated(embedder)
    writer.__dict__["embedder"] = gate
    reports = []
    t = threading.Thread(target=lambda: reports.append(
        writer.ingest([write(tmp_path / "v2.jsonl", story(NEW))])), daemon=True)
    t.start()
    try:
        assert gate.entered.wait(60), "the update never reached its embedding"
        reader = make_bot(data)  # another process's view of the store, mid-update
        assert [a.id for a in reader.catalog.articles()] == ["kiel"]
        assert "rosters" in cited(reader)
        assert reader.catalog.unfinished() == [("global", "kiel", "staged")]
    finally:
        gate.release.set()
        t.join(60)
    assert reports and reports[0].updated == 1 and not reports[0].failed
    assert "unpaid overtime" in cited(reader)
    # The old version's vectors went with it.
    counts = reader.catalog.counts()
    assert reader.vector_counts() == {"sentences": counts["sentences"],
                                      "chunks": counts["chunks"]}


def test_an_update_killed_midway_leaves_the_old_version_visible(make_bot, tmp_path):
    data = tmp_path / "data"
    nb = make_bot(data)
    nb.ingest([write(tmp_path / "v1.jsonl", story(OLD))])
    update = write(tmp_path / "v2.jsonl", story(NEW, extra=2500))
    env = {**os.environ, "NEWSBOT_DATA_DIR": str(data)}
    proc = subprocess.Popen([sys.executable, "-m", "newsbot", "ingest", str(update), "--quiet"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not staged(data):
            assert proc.poll() is None, "the update finished before it could be killed"
            assert time.monotonic() < deadline, "the update was never staged"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    after = make_bot(data)
    [stored] = after.catalog.articles()
    assert stored.id == "kiel" and stored.sentences == 1
    assert "rosters" in cited(after)
    # The next write finishes the update.
    report = after.ingest([update])
    assert report.unchanged == 1 and not report.failed and after.catalog.unfinished() == []
    assert "unpaid overtime" in cited(after)
    counts = after.catalog.counts()
    assert counts["sentences"] == 2501
    assert after.vector_counts() == {"sentences": 2501, "chunks": counts["chunks"]}


# -- no article holds the writer for long -------------------------------------------------------
ONE_LINE = "Ab cd. " * 280_000  # 1.96 million characters: half a million "sentences"


def test_a_2mb_one_line_article_is_split_only_up_to_the_cap():
    from newsbot.settings import Settings
    from retrieval.pipeline import split_article

    s = Settings()
    started = time.monotonic()
    sentences, chunks, capped = split_article("big", ONE_LINE, 0, s.max_sentence_chars,
                                              s.chunk_sentences, s.chunk_overlap,
                                              s.max_article_sentences, s.max_article_chunks)
    assert time.monotonic() - started < 15  # all 280,000 took a minute
    assert capped and len(sentences) == s.max_article_sentences == 5000
    assert len(chunks) <= s.max_article_chunks
    assert all(x.text == ONE_LINE[x.start:x.end] for x in sentences)
    # The chunk cap: sentences stop where the last chunk does.
    sentences, chunks, capped = split_article("big", ONE_LINE, 0, 600, 5, 2, 5000, 10)
    assert capped and len(chunks) == 10 and len(sentences) == chunks[-1].last_sentence + 1


def test_a_2mb_one_line_upload_is_capped_with_a_report_line(make_bot, tmp_path):
    nb = make_bot(max_article_sentences=300)
    big = write(tmp_path / "in" / "one-line.txt", "A very long line\n" + ONE_LINE)
    good = write(tmp_path / "in" / "kiel.txt", f"Kiel ferry strike\n{OLD}\n")
    started = time.monotonic()
    report = nb.ingest([big, good])
    assert time.monotonic() - started < 90
    assert (report.added, report.failed) == (2, [])
    [note] = report.notes
    assert note.where == str(big)
    assert note.reason.startswith("only its first 300 sentences")
    assert f"  note: {big}: only its first 300 sentences" in report.summary()
    assert len(nb.catalog.load("global", "one-line")[1]) == 300
    assert "rosters" in cited(nb)
    assert nb.ingest([big, good]).unchanged == 2  # the same file is the same article


def test_a_write_budget_stops_a_run_and_reports_the_rest(make_bot):
    from retrieval.ingest import iter_articles

    nb = make_bot()
    report = nb.ingest_articles(iter_articles([SAMPLES]), max_sentences=20)
    assert 0 < report.added < 8 and report.sentences <= 20
    assert report.failed and all("reached its budget of 20 sentences" in f.reason
                                 for f in report.failed)
    assert nb.ingest([SAMPLES]).added == len(report.failed)  # the rest, in another run


# -- text that can't be stored is cleaned, per record ---------------------------------------
def test_nul_and_lone_surrogates_beside_good_records(make_bot, tmp_path):
    rows = [
        json.dumps({"id": "good", "text": OLD}),
        # A lone surrogate in every field once aborted the whole run (UnicodeEncodeError).
        '{"id": "sur\\ud800", "title": "Quota \\udc00 talks", "source": "Wire \\ud83d", '
        '"authors": ["A \\udfff"], "url": "https://news.example/\\ud800", '
        '"text": "Ministers in Oslo agreed a new \\ud800 fishing quota for cod on Friday."}',
        '{"text": "Text only \\udc01: the depot would house forty electric buses."}',
        # A NUL once made SQL substr cut quotes short: empty citations.
        '{"id": "nul", "text": "Lead\\u0000 line. The council postponed its\\u0000 vote on '
        'the new bus depot until April."}',
    ]
    jsonl = write(tmp_path / "in" / "records.jsonl", "\n".join(rows) + "\n")
    # A NUL past the first 8 KB of a text file (binary files are refused on the first 8 KB).
    # The filler sentences differ: among ~100 identical chunks Chroma's HNSW index misses the
    # one that differs about half the time (test_hnsw_finds_the_one_chunk_among_duplicates).
    late = write(tmp_path / "in" / "late-nul.txt",
                 "Bridge repairs\n" + "".join(f"The bridge stayed shut for repairs on day {i}. "
                                               for i in range(300))
                 + "The\x00 mayor said the bridge reopens in May.\n")
    nb = make_bot()
    report = nb.ingest([jsonl, late])
    assert (report.added, report.failed) == (5, [])
    for a in nb.catalog.articles():
        article, sentences = nb.catalog.load("global", a.id)
        fields = [article.id, article.title, article.text, article.source, article.url,
                  *article.authors]
        assert not any("\x00" in f or any(0xD800 <= ord(c) <= 0xDFFF for c in f)
                       for f in fields), a.id
        assert all(s.text == article.text[s.start:s.end] for s in sentences)
    assert nb.catalog.load("global", "sur\ufffd")[0].title == "Quota \ufffd talks"
    assert "postponed its vote" in cited(nb, "what did the council postpone until April?")
    assert "reopens in May" in cited(nb, "when does the bridge reopen, said the mayor?")
    assert "rosters" in cited(nb)


def test_quotes_are_exact_even_where_a_stored_text_holds_a_nul(make_bot):
    """A store written before texts were cleaned may hold a NUL: SQL's substr stops there, so
    what it reads is checked against Python's slice."""
    from retrieval.pipeline import split_article

    nb = make_bot()
    text = "Lead\x00 words here. The council postponed its\x00 vote until April. Then more."
    a = Article(id="old", title="Old", text=text)
    sentences, chunks, _ = split_article("old", text, 0, 600, 2, 1)
    nb.catalog.write_pending("global", [(a, sentences, chunks)])
    nb.catalog.mark_ready("global", ["old"])
    keys = [("global", "old", s.index) for s in sentences]
    assert nb.catalog.sentence_texts(keys) == {k: s.text for k, s in zip(keys, sentences,
                                                                          strict=True)}
    meta = nb.catalog.chunk_meta(("global", "old", c.index) for c in chunks)
    assert [meta[("global", "old", c.index)][8] for c in chunks] == [c.text for c in chunks]


# -- a lost vector store is noticed, and repaired ----------------------------------------------
def test_a_deleted_chroma_dir_is_an_error_until_repaired(make_bot, tmp_path):
    data = tmp_path / "data"
    nb = make_bot(data)
    nb.ingest([SAMPLES])
    before = nb.vector_counts()
    shutil.rmtree(data / "chroma")
    env = {**os.environ, "NEWSBOT_DATA_DIR": str(data)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "newsbot", *args], capture_output=True,
                              text=True, timeout=180, env=env, cwd=tmp_path)

    for args in (("ask", REFERENCE_QUESTION), ("ingest", str(SAMPLES))):
        r = cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "holds 0 chunk vectors for library global" in r.stderr
        assert "Run `newsbot repair`" in r.stderr and "unchanged" not in r.stdout
    r = cli("repair")
    assert r.returncode == 0, r.stderr
    assert "stored the vectors of 8 articles again" in r.stdout
    r = cli("ask", "--json", REFERENCE_QUESTION)
    assert r.returncode == 0, r.stderr
    assert LAMBRECHT in json.loads(r.stdout)["citations"][0]["quote"]
    # Counted in another process: this one's Chroma client may still read the deleted files
    # (it failed here about 1 run in 4).
    r = subprocess.run([sys.executable, "-c", "import json; from newsbot.settings import "
                        "Settings; from retrieval.service import Newsbot; "
                        "print(json.dumps(Newsbot(Settings()).vector_counts()))"],
                       capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == before


def test_repair_deletes_vectors_of_no_stored_article(make_bot):
    nb = make_bot()
    nb.ingest([SAMPLES])
    nb.catalog.delete("global", ["interfax-wallace-2022-01-27"])  # its chunk vectors stay
    orphans = nb.vector_counts()["chunks"] - nb.catalog.counts()["chunks"]
    assert orphans > 0
    assert nb.repair() == {"articles": 0, "removed": orphans}
    assert nb.vector_counts()["chunks"] == nb.catalog.counts()["chunks"]


# -- vectors written again keep the catalog's hash, not the one this splitter would give -------
def test_repair_of_a_store_split_by_an_older_splitter(make_bot, tmp_path, monkeypatch):
    import retrieval.models

    data = tmp_path / "data"
    with monkeypatch.context() as old:
        old.setattr(retrieval.models, "SPLITTER_VERSION", 1)
        make_bot(data).ingest([SAMPLES])
    nb = make_bot(data)
    # The vectors are lost (deleted through Chroma: this process keeps its client open).
    nb.vectors.delete("global", [a.id for a in nb.catalog.articles()])
    assert nb.repair() == {"articles": 8, "removed": 0}
    # Search shows only vectors whose hash the catalog holds: the old splitter's.
    assert LAMBRECHT in cited(nb, REFERENCE_QUESTION, mode="dense")
    assert nb.repair() == {"articles": 0, "removed": 0}


@pytest.mark.parametrize("earlier", [False, True], ids=["new-article", "new-version"])
def test_a_crash_left_by_an_older_splitter_is_finished(make_bot, tmp_path, monkeypatch,
                                                        earlier):
    import retrieval.models
    from retrieval.pipeline import split_article

    data = tmp_path / "data"
    with monkeypatch.context() as old:
        old.setattr(retrieval.models, "SPLITTER_VERSION", 1)
        nb = make_bot(data)
        if earlier:
            nb.ingest([write(tmp_path / "v1.jsonl", story(OLD))])
        # What a crash leaves: the catalog written, no vectors yet.
        a = Article(id="kiel", title="Kiel ferry strike", text=NEW, source="Test Wire")
        sentences, chunks, _ = split_article("kiel", NEW, 0, 600, 5, 1)
        nb.catalog.write_pending("global", [(a, sentences, chunks)])
        assert nb.catalog.unfinished() == [("global", "kiel", "staged" if earlier else
                                            "pending")]
    nb = make_bot(data)
    assert nb.ingest([]).added == 0  # the next writer finishes it
    assert nb.catalog.unfinished() == []
    assert "unpaid overtime" in cited(nb, mode="dense")
    counts = nb.catalog.counts()
    assert nb.vector_counts() == {"sentences": counts["sentences"], "chunks": counts["chunks"]}
    assert nb.repair() == {"articles": 0, "removed": 0}


# -- small ones --------------------------------------------------------------------------------
def test_the_busy_message_names_no_path(make_bot, tmp_path):
    import fcntl

    from retrieval.errors import BusyError

    nb = make_bot()
    with open(nb.data_dir / "write.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(BusyError, match="another ingest or remove is running") as e:
            nb.ingest([SAMPLES])
    assert str(nb.data_dir) not in str(e.value) and "/" not in str(e.value)


def test_the_feedback_key_lives_outside_the_feedback_database(tmp_path):
    import hashlib
    import hmac

    from bot.feedback import FeedbackStore

    path = tmp_path / "feedback.sqlite3"
    store = FeedbackStore(path)
    key = (tmp_path / "feedback.key").read_text().strip()
    assert (tmp_path / "feedback.key").stat().st_mode & 0o777 == 0o600
    uid = 123456789012345678
    digest = store.user_hash(uid)
    store.close()
    assert key.encode() not in path.read_bytes()
    assert FeedbackStore(path).user_hash(uid) == digest  # the same key next time
    # A database written before kept the key in a table: it moves out, hashes unchanged.
    old = tmp_path / "old" / "feedback.sqlite3"
    old.parent.mkdir()
    db = sqlite3.connect(old)
    db.execute("CREATE TABLE secret (k INTEGER PRIMARY KEY CHECK (k = 1), salt TEXT NOT NULL)")
    db.execute("INSERT INTO secret VALUES (1, 'f00dfeedbeef')")
    db.commit()
    db.close()
    migrated = FeedbackStore(old)
    assert migrated.user_hash(uid) == hmac.new(b"f00dfeedbeef", str(uid).encode(),
                                               hashlib.sha256).hexdigest()[:24]
    migrated.close()
    assert b"f00dfeedbeef" not in old.read_bytes()
    assert (old.parent / "feedback.key").read_text() == "f00dfeedbeef"


@pytest.mark.xfail(strict=False, reason=(
    "known: Chroma's HNSW index misses the one distinct chunk among ~100 identical ones in "
    "about half the runs, and rank fusion then puts the lexical side's first hit below "
    "chunks both sides found. Chroma 1.5 already searches with ef 100; the miss comes from "
    "the graph pruning neighbours at equal distances, which a larger ef does not undo "
    "(docs/reader.md); exact search on small collections is not built"))
def test_hnsw_finds_the_one_chunk_among_duplicates(make_bot, tmp_path):
    late = write(tmp_path / "in" / "dup.txt",
                 "Bridge repairs\n" + "The bridge stayed shut for repairs. " * 300
                 + "The mayor said the bridge reopens in May.\n")
    nb = make_bot()
    nb.ingest([late])
    assert "reopens in May" in cited(nb, "when does the bridge reopen, said the mayor?")
