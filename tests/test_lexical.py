"""BM25 on disk: scores equal to the bm25s reference, built the same in blocks or at once,
memory-mapped by readers, and safe to replace while another process reads."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from retrieval import lexical
from retrieval.tokens import tokens
from tests.conftest import SAMPLES, write

WORDS = ("ferry strike port Kiel crew roster union wage harbour minister talks storm delay "
         "council vote budget school teacher rail signal freight Baltic").split()


def _words(n_docs: int) -> list[str]:
    # A large corpus gets a large vocabulary, so its terms are rare (the sparse sum).
    return WORDS if n_docs < 1000 else [f"term{i}" for i in range(2000)]


def _corpus(n: int, seed: int = 7) -> list[list[str]]:
    rng = random.Random(seed)
    return [tokens(" ".join(rng.choices(_words(n), k=rng.randint(1, 30)))) for _ in range(n)]


def _index(corpus: list[list[str]]) -> lexical._Index:
    return lexical.memory_index(corpus)


@pytest.mark.parametrize("n_docs", [40, 3000])  # many postings per chunk; few (the sparse sum)
def test_scores_equal_the_bm25s_reference(n_docs):
    import bm25s

    corpus = _corpus(n_docs)
    ours = _index(corpus)
    ref = bm25s.BM25(k1=lexical.K1, b=lexical.B)  # the Lucene variant, its default
    ref.index(corpus, show_progress=False)
    rng = random.Random(1)
    for _ in range(30):
        query = tokens(" ".join(rng.sample(_words(n_docs), rng.randint(1, 4))))
        expected = ref.get_scores(query)
        got = lexical.top_k(ours, query, n_docs, None)
        assert len(got) == int((expected > 0).sum())
        for doc, score in got:
            assert score == pytest.approx(float(expected[doc]), rel=1e-5)
        scores = [s for _, s in got]
        assert scores == sorted(scores, reverse=True)


def test_building_in_blocks_gives_the_same_index(monkeypatch):
    corpus = _corpus(500)
    whole = _index(corpus)
    monkeypatch.setattr(lexical, "_BLOCK", 37)
    blocks = _index(corpus)
    assert whole.vocab == blocks.vocab
    for key in ("indptr", "docs", "tf", "doc_len"):
        np.testing.assert_array_equal(getattr(whole.segments[0], key),
                                      getattr(blocks.segments[0], key))


def test_ties_are_cut_by_chunk_number_and_the_article_mask_applies():
    corpus = [tokens("ferry strike")] * 6 + [tokens("budget vote")]
    idx = _index(corpus)
    assert [d for d, _ in lexical.top_k(idx, tokens("ferry"), 3, None)] == [0, 1, 2]
    allowed = np.array([False, True, False, True, True, True, True])
    assert [d for d, _ in lexical.top_k(idx, tokens("ferry"), 2, [allowed])] == [1, 3]
    assert lexical.top_k(idx, tokens("unknown words"), 3, None) == []


def test_a_reader_maps_the_saved_index_instead_of_rebuilding(make_bot, monkeypatch):
    nb = make_bot()
    nb.ingest([SAMPLES])
    root = nb.data_dir / "bm25"
    assert (root / "CURRENT").is_file()
    other = make_bot(data_dir=nb.data_dir)

    def no_build(*_):
        raise AssertionError("a reader with a current index on disk must not rebuild")

    monkeypatch.setattr(lexical.LexicalIndex, "_build", no_build)
    idx = other.lexical.index()
    assert isinstance(idx.segments[0].docs, np.memmap)
    assert isinstance(idx.segments[0].tf, np.memmap)
    assert idx.generation == other.catalog.generation()
    hits = other.lexical.search("Wallace Lambrecht Germany", 5, ["global"])
    assert hits and hits[0][0][1] == "interfax-wallace-2022-01-27"


def test_old_builds_are_pruned_and_the_old_pickle_removed(make_bot, tmp_path, monkeypatch):
    monkeypatch.setattr(lexical, "UNUSED_SEGMENT_S", 0.0)
    nb = make_bot()
    (nb.data_dir).mkdir(parents=True, exist_ok=True)
    legacy = nb.data_dir / "bm25.pkl"
    legacy.write_bytes(b"an index from an earlier version")
    old_format = nb.data_dir / "bm25" / "g3-0123abcd"  # a build of the earlier layout
    old_format.mkdir(parents=True)
    for i in range(3):
        nb.ingest([write(tmp_path / f"n{i}.txt", f"Ferry news {i}\nThe Kiel ferry crews "
                         f"struck for the {i + 2}nd time over rosters.")])
    root = nb.data_dir / "bm25"
    manifests = sorted(p.name for p in root.iterdir() if p.name.startswith("m-"))
    current = (root / "CURRENT").read_text()
    assert current in manifests and len(manifests) == 2
    named = {s["name"] for m in manifests for s in json.loads((root / m).read_text())["segments"]}
    assert {p.name for p in root.iterdir() if p.is_dir()} == named
    assert not legacy.exists() and not old_format.exists()


def test_leftovers_of_a_crashed_build_are_pruned_once_stale(make_bot, tmp_path):
    """A build killed mid-save leaves .tmp-* (and maybe a .CURRENT-* pointer); the next build
    removes those older than any running build could be, and leaves a fresh one alone."""
    import os
    import time

    nb = make_bot()
    nb.ingest([write(tmp_path / "a.txt", "Ferry news\nThe Kiel ferry crews struck again.")])
    root = nb.data_dir / "bm25"
    old_tmp, old_ptr = root / ".tmp-g1-dead", root / ".CURRENT-g1-dead"
    fresh = root / ".tmp-g9-live"
    old_tmp.mkdir()
    (old_tmp / "docs.npy").write_bytes(b"x" * 1000)
    old_ptr.write_text("g1-dead")
    fresh.mkdir()
    long_ago = time.time() - 2 * 3600
    for p in (old_tmp, old_ptr):
        os.utime(p, (long_ago, long_ago))
    nb.ingest([write(tmp_path / "b.txt", "More news\nThe harbour reopened on Monday.")])
    assert not old_tmp.exists() and not old_ptr.exists()
    assert fresh.exists()  # may belong to a build still running in another process


def test_an_unwritable_index_folder_still_serves_from_memory(make_bot):
    nb = make_bot()
    nb.data_dir.mkdir(parents=True, exist_ok=True)
    (nb.data_dir / "bm25").write_text("a file where the folder should be")
    nb.ingest([SAMPLES])
    hits = nb.lexical.search("Wallace Lambrecht Germany", 5, ["global"])
    assert hits and hits[0][0][1] == "interfax-wallace-2022-01-27"
    assert not isinstance(nb.lexical.index().segments[0].docs, np.memmap)


def _decoded_chunks(nb) -> list[tuple[list[str], list[str]]]:
    """(stored terms, terms of the chunk's text) of every chunk."""
    names = {i: t for t, i in nb.catalog.vocabulary().items()}
    out = []
    for lib, aid, _, _, spans in nb.catalog.iter_ready_articles():
        text = nb.catalog.text_of(lib, aid)
        for _, start, end, stored in spans:
            assert stored is not None
            out.append(([names[int(i)] for i in np.frombuffer(stored, dtype=np.int32)],
                        tokens(text[start:end])))
    return out


def test_rebuilds_read_stored_term_ids_and_writers_share_one_vocabulary(make_bot, tmp_path,
                                                                         monkeypatch):
    first = make_bot()
    second = make_bot(data_dir=first.data_dir)
    first.ingest([SAMPLES])
    second.ingest([write(tmp_path / "a.txt", "Ferry news\nThe Kiel ferry crews went on "
                         "strike over rosters and Wallace.")])  # opened before: must catch up
    first.ingest([write(tmp_path / "b.txt", "Rail news\nSignal failures delayed Baltic "
                        "freight trains near Kiel.")])
    pairs = _decoded_chunks(first)
    assert len(pairs) > 10 and all(stored == fresh for stored, fresh in pairs)
    ids = sorted(first.catalog.vocabulary().values())
    assert ids == list(range(len(ids)))

    def no_tokenizing(*_):
        raise AssertionError("a rebuild must read the stored term ids")

    monkeypatch.setattr(lexical, "term_ids", no_tokenizing)
    built = make_bot(data_dir=first.data_dir).lexical._build()
    assert len(built["segments"][0]["arrays"]["doc_len"]) == len(pairs)


def test_a_failed_write_forgets_the_term_ids_it_handed_out(make_bot, tmp_path, monkeypatch):
    from retrieval.catalog import Catalog

    nb = make_bot()
    nb.ingest([SAMPLES])
    real_bump = Catalog._bump

    def failing_bump(self, db):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Catalog, "_bump", failing_bump)
    doc = write(tmp_path / "c.txt", "Port news\nHarbour pilots in Rostock refused night shifts.")
    with pytest.raises(RuntimeError, match="disk full"):
        nb.ingest([doc])
    monkeypatch.setattr(Catalog, "_bump", real_bump)
    nb.ingest([write(tmp_path / "d.txt", "Port news\nRostock harbour pilots returned to "
                     "work after a pay offer.")])
    assert all(stored == fresh for stored, fresh in _decoded_chunks(nb))
    ids = sorted(nb.catalog.vocabulary().values())
    assert ids == list(range(len(ids)))


def test_a_store_without_term_ids_is_tokenized_once_and_answers_the_same(make_bot):
    nb = make_bot()
    nb.ingest([SAMPLES])
    question = "Wallace Lambrecht Germany meeting"
    before = nb.lexical.search(question, 10, ["global"])
    with nb.catalog.transaction() as db:  # as a store from before term ids were kept
        db.execute("UPDATE chunks SET terms=NULL")
        nb.catalog._bump(db)
    nb.lexical.refresh()
    after = nb.lexical.search(question, 10, ["global"])
    assert [k for k, _ in after] == [k for k, _ in before]
    assert [s for _, s in after] == pytest.approx([s for _, s in before])


def _forget_term_ids(nb) -> None:
    with nb.catalog.transaction() as db:  # as a store from before term ids were kept
        db.execute("UPDATE chunks SET terms=NULL")
        db.execute("DELETE FROM terms")
        db.execute("DELETE FROM meta WHERE key='terms_complete'")
    nb.catalog._vocab = None


def test_the_next_writer_gives_old_chunks_their_term_ids(make_bot, tmp_path):
    nb = make_bot()
    nb.ingest([SAMPLES])
    _forget_term_ids(nb)
    nb.ingest([write(tmp_path / "e.txt", "Port news\nRostock pilots went back to work.")])
    pairs = _decoded_chunks(nb)  # asserts none is left without ids
    assert len(pairs) > 10 and all(stored == fresh for stored, fresh in pairs)
    assert nb.catalog.get_meta("terms_complete") == "1"
    _forget_term_ids(nb)  # again, a few articles per transaction
    assert nb.catalog.backfill_terms(batch=2) == len(pairs)
    assert all(stored == fresh for stored, fresh in _decoded_chunks(nb))
    assert nb.catalog.backfill_terms(batch=2) == 0  # once per store


def test_an_old_catalog_gains_the_terms_column_once_even_if_two_open_it(tmp_path):
    import sqlite3

    from retrieval import catalog as catalog_module

    path = tmp_path / "catalog.sqlite3"
    catalog_module.Catalog(path).close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE chunks DROP COLUMN terms")  # as written before term ids were kept
    db.close()
    first = catalog_module.Catalog(path)
    # A second process that saw the old schema adds the column after the first one did.
    catalog_module._add_terms_column(first.db, path)
    columns = [row[1] for row in first.db.execute("PRAGMA table_info(chunks)")]
    assert columns.count("terms") == 1
    first.close()


@pytest.fixture
def segmented(monkeypatch):
    """Keep small segments apart (no merge), as a large store would between merges."""
    monkeypatch.setattr(lexical, "SYNC_MERGE_DOCS", 0)
    monkeypatch.setattr(lexical, "MERGE_SHARE", 1e9)


QUESTIONS = ["Wallace Lambrecht Germany", "ferry strike Kiel rosters", "sanctions Russia gas",
             "harbour pilots Rostock pay", "Hungary Slovakia visit minister"]


def _full_rebuild(nb) -> dict:
    fresh = lexical.LexicalIndex(nb.catalog, nb.data_dir / "unused")
    fresh._index = fresh._assemble(fresh._build())
    return {q: fresh.search(q, 50, ["global"]) for q in QUESTIONS}


def test_segments_score_exactly_as_a_full_rebuild(make_bot, tmp_path, segmented):
    nb = make_bot()
    nb.ingest([SAMPLES])
    nb.ingest([write(tmp_path / "a.txt", "Ferry news\nThe Kiel ferry crews went on strike "
                     "over rosters on Thursday.")])
    nb.ingest([write(tmp_path / "b.txt", "Port news\nHarbour pilots in Rostock refused night "
                     "shifts over pay and rosters.")])
    # b replaced (same id, new text), a removed, one sample removed.
    nb.ingest([write(tmp_path / "b.txt", "Port news\nRostock harbour pilots accepted a pay "
                     "offer and returned to work.")])
    assert nb.remove("a") and nb.remove("sample-pipeline-delay")
    idx = nb.lexical.index()
    assert len(idx.segments) == 4 and idx.generation == nb.catalog.generation()
    dead = sum(len(s.dead_rows) for s in idx.segments)
    assert dead == 3  # a, the first b, the pipeline sample
    expected = _full_rebuild(nb)
    for q in QUESTIONS:
        got = nb.lexical.search(q, 50, ["global"])
        assert [k for k, _ in got] == [k for k, _ in expected[q]], q
        assert [s for _, s in got] == pytest.approx([s for _, s in expected[q]], rel=1e-9)
        assert all(k[1] not in ("a", "sample-pipeline-delay") for k, _ in got)
    assert any(k[1] == "b" for k, _ in nb.lexical.search("Rostock pay offer", 5, ["global"]))
    # Another process maps the same segments and gets the same.
    other = make_bot(data_dir=nb.data_dir)
    assert len(other.lexical.index().segments) == 4
    assert other.lexical.search(QUESTIONS[1], 50, ["global"]) == \
        nb.lexical.search(QUESTIONS[1], 50, ["global"])


def test_an_ingest_builds_only_a_segment_of_the_new_articles(make_bot, tmp_path, segmented,
                                                              monkeypatch):
    nb = make_bot()
    nb.ingest([SAMPLES])

    def no_full_build(*_):
        raise AssertionError("an ingest into an indexed store must not rebuild it all")

    monkeypatch.setattr(lexical.LexicalIndex, "_build", no_full_build)
    nb.ingest([write(tmp_path / "a.txt", "Ferry news\nThe Kiel ferry crews went on strike.")])
    new = nb.lexical.index().segments[-1]
    assert new.article_ids == ["a"] and new.num_docs == 1


def test_segments_are_merged_in_the_background(make_bot, tmp_path, monkeypatch):
    import time

    monkeypatch.setattr(lexical, "SYNC_MERGE_DOCS", 0)
    monkeypatch.setattr(lexical, "MAX_SEGMENTS", 2)
    nb = make_bot()
    nb.ingest([SAMPLES])
    for i in range(3):
        nb.ingest([write(tmp_path / f"n{i}.txt", f"Ferry news {i}\nThe Kiel ferry crews "
                         f"struck for the {i + 2}nd time over rosters.")])
    # The third segment set a merge going; the articles merged are in the main segment.
    deadline = time.monotonic() + 30
    while "n1" not in nb.lexical.index().segments[0].article_ids and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    while nb.lexical._merging.locked() and time.monotonic() < deadline:
        time.sleep(0.05)
    idx = nb.lexical.refresh()
    assert {"n0", "n1"} <= set(idx.segments[0].article_ids)
    assert len(idx.segments) <= lexical.MAX_SEGMENTS
    assert idx.generation == nb.catalog.generation()
    expected = _full_rebuild(nb)
    assert {q: nb.lexical.search(q, 50, ["global"]) for q in QUESTIONS} == expected
