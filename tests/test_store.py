"""The store on real Chroma in a temp dir: idempotence, replacement, removal, filters, libraries."""

from __future__ import annotations

import json

import pytest

from tests.conftest import (
    LAMBRECHT,
    REFERENCE_QUESTION,
    SAMPLES,
    copy_samples,
    server_settings,
    write,
)


# Every test here runs twice: on embedded Chroma and on a Chroma server (`chroma run`).
@pytest.fixture(params=["embedded", "server"])
def make_bot(make_bot, request, tmp_path):
    if request.param == "embedded":
        return make_bot
    server = request.getfixturevalue("chroma_server")

    def make(data_dir=None, **overrides):
        data_dir = data_dir or tmp_path / "data"
        return make_bot(data_dir, **server_settings(server, data_dir), **overrides)

    return make


@pytest.fixture
def sample_bot(make_bot, tmp_path):
    nb = make_bot(tmp_path / "samples-store")
    assert not nb.ingest([SAMPLES]).failed
    return nb


def vector_counts(nb, library="global", article_id=None):
    return nb.vector_counts(library, article_id)


def test_reingest_changes_nothing(make_bot):
    nb = make_bot()
    first = nb.ingest([SAMPLES])
    assert first.added == 8 and not first.failed
    generation, counts = nb.catalog.generation(), nb.vector_counts()
    again = nb.ingest([SAMPLES])
    assert (again.added, again.updated, again.unchanged) == (0, 0, 8)
    assert nb.catalog.generation() == generation
    assert nb.vector_counts() == counts == {"sentences": first.sentences,
                                            "chunks": first.chunks}


def test_changed_article_replaces_its_old_sentences(make_bot, tmp_path):
    nb = make_bot()
    path = write(tmp_path / "story.txt", "Port strike\nDockers in Hull began a strike on Monday. "
                 "The union asked for higher pay. Ships were diverted to Immingham.")
    nb.ingest([path])
    write(path, "Port strike ends\nDockers in Hull ended their strike on Friday. "
          "The union accepted a new offer.")
    report = nb.ingest([path])
    assert (report.added, report.updated) == (0, 1)
    article, sentences = nb.catalog.load("global", "story")
    assert article.title == "Port strike ends" and len(sentences) == 2
    assert vector_counts(nb, article_id="story")["sentences"] == 2
    answer = nb.ask("where were ships diverted?")
    assert all("Immingham" not in c.quote for c in answer.citations)


def test_reingest_after_a_splitter_change_resplits_an_unchanged_article(make_bot, tmp_path,
                                                                        monkeypatch):
    import retrieval.models
    import retrieval.split

    text = ("Court hearing\nThe hearing opens at 10 a.m. ET Tuesday in the old courthouse, "
            "officials said. The judge will rule by noon.")
    path = write(tmp_path / "hearing.txt", text)
    nb = make_bot()
    # Stored by an older splitter, which cut "10 a.m." / "ET Tuesday".
    whole = retrieval.split.split_sentences
    with monkeypatch.context() as old:
        old.setattr(retrieval.models, "SPLITTER_VERSION", 1)
        old.setattr(retrieval.split, "split_sentences",
                    lambda *a, **kw: whole(*a, **{**kw, "merge": False}))
        assert nb.ingest([path]).added == 1
        assert len(nb.catalog.load("global", "hearing")[1]) == 3
        assert nb.ingest([path]).unchanged == 1
    report = nb.ingest([path])
    assert (report.added, report.updated, report.unchanged) == (0, 1, 0)
    article, sentences = nb.catalog.load("global", "hearing")
    assert [article.text[s.start:s.end] for s in sentences] == [s.text for s in sentences]
    assert sentences[0].text.startswith("The hearing opens at 10 a.m. ET Tuesday")
    assert vector_counts(nb, article_id="hearing") == {
        "sentences": len(sentences), "chunks": len(nb.catalog.chunks_of("global", "hearing"))}
    assert len(sentences) == 2  # the old version's vectors went with it
    assert nb.ingest([path]).unchanged == 1
    answer = nb.ask("when does the hearing open?")
    assert answer.citations and answer.citations[0].quote == sentences[0].text


class Counting:
    """The real embedder, counting the texts it is given."""

    def __init__(self, inner) -> None:
        self.inner, self.texts = inner, []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def embed(self, texts: list[str]):
        self.texts += texts
        return self.inner.embed(texts)


def test_a_new_version_embeds_only_the_sentences_it_changed(make_bot, embedder, tmp_path,
                                                            monkeypatch):
    import numpy as np

    import retrieval.models
    from retrieval.service import _chunk_vectors

    def story(middle: str) -> str:
        return (f"Port strike\nDockers in Hull began a strike on Monday. {middle} Ships were "
                "diverted to Immingham. The port expects delays all week.")

    path = write(tmp_path / "story.txt", story("The union asked for more."))
    nb = make_bot()
    nb.ingest([path])
    before = dict(zip([s.text for s in nb.catalog.load("global", "story")[1]],
                      nb.catalog.vectors_of("global", "story"), strict=True))
    counting = Counting(embedder)
    nb.__dict__["embedder"] = counting
    write(path, story("The union asked for higher pay."))
    assert nb.ingest([path]).updated == 1
    assert counting.texts == ["The union asked for higher pay."]
    # A re-split with the same cuts (only the version moved) embeds nothing.
    monkeypatch.setattr(retrieval.models, "SPLITTER_VERSION", 99)
    assert nb.ingest([path]).updated == 1
    assert counting.texts == ["The union asked for higher pay."]
    _, sentences = nb.catalog.load("global", "story")
    after = nb.catalog.vectors_of("global", "story")
    for s, v in zip(sentences, after, strict=True):
        if s.index == 1:  # the changed one: its own vector
            assert np.allclose(v, embedder.embed([s.text])[0], atol=2e-3)
        else:  # the stored vector, not a new one
            assert np.array_equal(v, before[s.text])
    # The passages' vectors in Chroma are built from these.
    chunks = nb.catalog.chunks_of("global", "story")
    got = nb.vectors._store("chunks", "global")._collection.get(
        where={"article_id": "story"}, include=["embeddings", "metadatas"])
    stored = {m["idx"]: e for m, e in zip(got["metadatas"], got["embeddings"], strict=True)}
    assert sorted(stored) == [c.index for c in chunks]
    for c, v in zip(chunks, _chunk_vectors(after, chunks, np), strict=True):
        assert np.allclose(stored[c.index], v, atol=1e-5)
    answer = nb.ask("where were ships diverted?")
    assert answer.citations[0].quote == "Ships were diverted to Immingham."


def test_same_url_under_a_new_id_replaces_the_old_article(make_bot, tmp_path):
    nb = make_bot()
    rec = {"id": "old", "title": "T", "text": "Tram fares rise in Leeds. Riders object.",
           "url": "https://example.org/trams"}
    nb.ingest([write(tmp_path / "a.jsonl", json.dumps(rec))])
    rec.update(id="new", text="Tram fares rise in Leeds by ten pence. Riders object.")
    report = nb.ingest([write(tmp_path / "b.jsonl", json.dumps(rec))])
    assert report.updated == 1
    assert [a.id for a in nb.catalog.articles()] == ["new"]
    assert vector_counts(nb, article_id="old") == {"sentences": 0, "chunks": 0}


def test_remove_deletes_an_article_completely(make_bot):
    nb = make_bot()
    nb.ingest([SAMPLES])
    before = nb.vector_counts()
    assert vector_counts(nb, article_id="interfax-wallace-2022-01-27")["sentences"] == 14
    assert nb.remove("interfax-wallace-2022-01-27")
    assert nb.catalog.load("global", "interfax-wallace-2022-01-27") is None
    assert vector_counts(nb, article_id="interfax-wallace-2022-01-27") == {
        "sentences": 0, "chunks": 0}
    assert nb.vector_counts()["sentences"] == before["sentences"] - 14
    assert all(LAMBRECHT not in c.quote for c in nb.ask(REFERENCE_QUESTION).citations)
    assert not nb.remove("interfax-wallace-2022-01-27")


def test_source_and_date_filters(sample_bot):
    q = "ministers discussed sanctions against Russia"
    only_interfax = sample_bot.ask(q, source="interfax")
    assert {p.source for p in only_interfax.passages} == {"Interfax"}
    march = sample_bot.ask(q, since="2022-03-01")
    assert {p.published for p in march.passages} == {"2022-03-15"}
    early = sample_bot.ask(q, until="2021-12-31")
    assert {p.published for p in early.passages} == {"2021-11-30"}
    window = sample_bot.ask(q, since="2022-01-24", until="2022-01-28")
    assert {p.published for p in window.passages} <= {"2022-01-24", "2022-01-27", "2022-01-28"}
    none = sample_bot.ask(q, source="No Such Paper")
    assert none.abstained and none.passages == []


def test_libraries_are_separate_namespaces(make_bot, tmp_path):
    nb = make_bot()
    nb.ingest([SAMPLES])
    guild = write(tmp_path / "guild.txt", "Club news\nThe chess club meets in Room 4 on "
                  "Thursdays. New members are welcome.")
    nb.ingest([guild], library="guild-42")
    question = "where does the chess club meet?"
    assert nb.ask(question, libraries=["global"]).abstained
    in_guild = nb.ask(question, libraries=["global", "guild-42"])
    assert "Room 4" in in_guild.citations[0].quote
    assert in_guild.citations[0].library == "guild-42"
    assert not nb.ask(REFERENCE_QUESTION, libraries=["guild-42"]).citations
    # The same id may exist in two libraries; removing one leaves the other.
    nb.ingest([copy_samples(tmp_path / "copy")], library="guild-42")
    assert nb.remove("interfax-wallace-2022-01-27", library="guild-42")
    assert LAMBRECHT in nb.ask(REFERENCE_QUESTION, libraries=["global"]).citations[0].quote


def test_stale_bm25_keeps_serving_while_it_rebuilds(make_bot, tmp_path):
    import time

    reader = make_bot()
    reader.ingest([SAMPLES])
    before = reader.lexical.index()
    # Another process (here: another instance) writes to the same store.
    writer = make_bot(data_dir=reader.data_dir)
    writer.ingest([write(tmp_path / "new.txt", "Ferry news\nThe Kiel ferry crews went on "
                         "strike over rosters.")])
    assert reader.lexical.index() is before  # served at once, not rebuilt in the asker's path
    deadline = time.monotonic() + 60
    while reader.lexical.index().generation != reader.catalog.generation():
        assert time.monotonic() < deadline, "the background rebuild never finished"
        time.sleep(0.05)
    assert "rosters" in reader.ask("why did the Kiel ferry crews strike?").citations[0].quote


def test_filters_fall_back_to_an_exact_query_when_overfetch_is_not_enough(make_bot, tmp_path,
                                                                          monkeypatch):
    from retrieval.store import VectorStore

    nb = make_bot()
    recs = [{"id": f"new{i}", "title": f"Bridge {i}", "source": "Wire",
             "published": "2023-05-01", "text": f"Engineers inspected bridge number {i} on the "
             f"river. Repairs to bridge {i} will take weeks."} for i in range(60)]
    recs.append({"id": "old", "title": "Old bridge", "source": "Wire", "published": "2019-02-02",
                 "text": "Engineers inspected the old stone bridge over the river."})
    nb.ingest([write(tmp_path / "b.jsonl", "\n".join(json.dumps(r) for r in recs))])
    calls = []
    real = VectorStore._query

    def spy(self, library, query, n, where):
        calls.append(where)
        return real(self, library, query, n, where)

    monkeypatch.setattr(VectorStore, "OVERFETCH", 1)  # so that over-fetching cannot suffice
    monkeypatch.setattr(VectorStore, "_query", spy)
    hits = nb.vectors.search_chunks(nb.embedder.embed_query("bridge inspection"), 5, ["global"],
                                    until="2019-12-31")
    assert [h.article_id for h in hits] == ["old"]
    assert calls == [None, {"published": {"$lte": 20191231}}]
