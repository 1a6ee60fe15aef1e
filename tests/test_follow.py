"""Standing questions in the core: real store, real model, real SQLite."""

from __future__ import annotations

import json
import time

import pytest
from conftest import SAMPLES, copy_samples, write

from retrieval.errors import NewsbotError
from retrieval.follow import CLI, FollowStore, add_follow, check_follows

QUESTION = "Who will replace Ben Wallace as UK defence secretary?"
ANSWER = "Grant Shapps will replace Ben Wallace as the UK defence secretary"
SHAPPS = (
    "London, 31 August 2023. Grant Shapps will replace Ben Wallace as the UK defence secretary, "
    "Downing Street said on Thursday. Wallace had said in July that he would leave the "
    "government at the next reshuffle. Shapps, who was energy secretary until now, takes over "
    "a ministry at the centre of Britain's support for Ukraine.\n")
UNRELATED = (
    "Oslo, 30 August 2023. Norway's parliament approved a new fisheries budget on Wednesday "
    "after a long debate about quotas in the Barents Sea. The budget raises spending on coastal "
    "patrols by a tenth.\n")


def article(tmp_path, name: str, title: str, text: str, url: str = ""):
    rec = {"id": name, "title": title, "text": text, "source": "Test Wire",
           "published": "2023-08-31", "url": url or f"https://example.com/{name}"}
    return write(tmp_path / "in" / f"{name}.json", json.dumps(rec))


@pytest.fixture
def nb(make_bot, tmp_path):
    nb = make_bot()
    nb.ingest([copy_samples(tmp_path / "samples")])
    return nb


@pytest.fixture
def store(nb):
    s = FollowStore(nb.data_dir / "follows.sqlite3")
    yield s
    s.close()


def test_answered_once_by_the_new_article_that_answers(nb, store, tmp_path):
    follow, new = add_follow(nb, store, QUESTION, ["global"], CLI)
    assert new and follow.id == 1
    assert check_follows(nb, store, CLI) == []  # nothing new yet
    nb.ingest([article(tmp_path, "fish", "Norway passes fisheries budget", UNRELATED)])
    assert check_follows(nb, store, CLI) == []  # new, but it doesn't answer
    time.sleep(1.1)  # the scan watermark is to the second: the next ingest is a later one
    nb.ingest([article(tmp_path, "shapps", "Shapps named defence secretary", SHAPPS)])
    hits = check_follows(nb, store, CLI)
    assert len(hits) == 1
    hit = hits[0]
    assert hit.follow.id == follow.id
    assert hit.citation.article_id == "shapps" and ANSWER in hit.citation.quote
    assert hit.score >= nb.settings.follow_min_score
    store.record_post(hit)
    # The same article again is unchanged: nothing new to check.
    nb.ingest([article(tmp_path, "shapps", "Shapps named defence secretary", SHAPPS)])
    assert check_follows(nb, store, CLI) == []
    # A reprint under another id and URL gives the same answer: not posted twice, even once
    # the hourly limit is over.
    store.db.execute("UPDATE follows SET last_posted='2000-01-01T00:00:00+00:00'")
    nb.ingest([article(tmp_path, "shapps-copy", "Shapps gets defence", SHAPPS,
                       "https://example.org/copy")])
    assert check_follows(nb, store, CLI) == []
    assert [p[1] for p in store.posts(follow.id)] == ["shapps"]


def test_at_most_one_post_an_hour(nb, store, tmp_path):
    add_follow(nb, store, QUESTION, ["global"], CLI)
    nb.ingest([article(tmp_path, "shapps", "Shapps named defence secretary", SHAPPS)])
    (hit,) = check_follows(nb, store, CLI)
    store.record_post(hit)
    other = SHAPPS.replace("Grant Shapps", "Penny Mordaunt").replace("Shapps,", "Mordaunt,")
    nb.ingest([article(tmp_path, "mordaunt", "Mordaunt named defence secretary", other)])
    assert check_follows(nb, store, CLI) == []  # a new answer, but within the hour


def test_only_articles_stored_after_the_question_count(nb, store, tmp_path):
    nb.ingest([article(tmp_path, "shapps", "Shapps named defence secretary", SHAPPS)])
    time.sleep(1.1)
    add_follow(nb, store, QUESTION, ["global"], CLI)
    assert check_follows(nb, store, CLI) == []


def test_a_re_split_article_is_not_news(nb, store, tmp_path, monkeypatch):
    import retrieval.models

    path = article(tmp_path, "shapps", "Shapps named defence secretary", SHAPPS)
    with monkeypatch.context() as old:
        old.setattr(retrieval.models, "SPLITTER_VERSION", 1)
        nb.ingest([path])
        first = nb.catalog.ingested_since("")
    time.sleep(1.1)
    add_follow(nb, store, QUESTION, ["global"], CLI)
    # After an upgrade the same file is re-split (updated), but it arrived before the
    # question: nothing to post.
    assert nb.ingest([path]).updated == 1
    assert check_follows(nb, store, CLI) == []
    assert [r[3] for r in nb.catalog.ingested_since("") if r[1] == "shapps"] == [
        r[3] for r in first if r[1] == "shapps"]
    # A real change to it is news.
    time.sleep(1.1)
    changed = SHAPPS.replace("on Thursday", "late on Thursday")
    assert nb.ingest([article(tmp_path, "shapps", "Shapps named defence secretary",
                              changed)]).updated == 1
    (hit,) = check_follows(nb, store, CLI)
    assert hit.citation.article_id == "shapps" and ANSWER in hit.citation.quote


def test_scopes_and_libraries_are_apart(nb, store, tmp_path):
    # A server's question reads its own library and the operator's, never another server's.
    a, _ = add_follow(nb, store, QUESTION, ["global", "guild-1"], "1", "100", "7")
    b, _ = add_follow(nb, store, QUESTION, ["global", "guild-2"], "2", "200", "8")
    nb.ingest([article(tmp_path, "shapps", "Shapps named defence secretary", SHAPPS)],
              library="guild-1")
    hits = check_follows(nb, store, "discord")
    assert [h.follow.id for h in hits] == [a.id]
    assert not store.remove(a.id, "2")  # another server can't remove it
    assert store.remove(a.id, "1")
    assert [f.id for f in store.list(scope="2")] == [b.id]


def test_limit_duplicates_and_restart(nb, tmp_path):
    store = FollowStore(nb.data_dir / "follows.sqlite3")
    for i in range(3):
        add_follow(nb, store, f"{QUESTION} ({i})", ["global"], "9", "1", "5")
    with pytest.raises(NewsbotError, match="already follows 3 questions"):
        store.add("another question?", store.vectors([1])[0], ["global"], "9", "1", "5", 3)
    with pytest.raises(NewsbotError, match="already followed here"):
        add_follow(nb, store, f"{QUESTION} (0)", ["global"], "9", "1", "5")
    assert store.pause(1, "no permission") and not store.pause(1, "again")
    store.close()
    store = FollowStore(nb.data_dir / "follows.sqlite3")  # a restart keeps them
    follows = store.list(scope="9")
    assert [f.question for f in follows] == [f"{QUESTION} ({i})" for i in range(3)]
    assert follows[0].paused == "no permission"
    _, new = add_follow(nb, store, f"{QUESTION} (0)", ["global"], "9", "1", "5")
    assert not new and store.list(scope="9")[0].paused == ""  # adding it again resumes it
    store.close()


def test_bad_questions_and_store(nb, store, tmp_path):
    with pytest.raises(NewsbotError, match="empty"):
        add_follow(nb, store, "   ", ["global"], CLI)
    with pytest.raises(NewsbotError, match="characters long"):
        add_follow(nb, store, "x" * 5000, ["global"], CLI)
    bad = write(tmp_path / "bad" / "follows.sqlite3", b"\x00not a database" * 100)
    with pytest.raises(NewsbotError, match="cannot open the standing questions"):
        FollowStore(bad)


def test_pending_article_holds_the_watermark(nb, store, tmp_path):
    add_follow(nb, store, QUESTION, ["global"], CLI)
    nb.ingest([article(tmp_path, "shapps", "Shapps named defence secretary", SHAPPS)])
    # As if a long ingest had written it pending and not finished yet.
    nb.catalog.db.execute("UPDATE articles SET status='pending' WHERE id='shapps'")
    time.sleep(1.1)
    assert check_follows(nb, store, CLI) == []
    nb.catalog.db.execute("UPDATE articles SET status='ready' WHERE id='shapps'")
    assert len(check_follows(nb, store, CLI)) == 1



def test_cli_follow_and_watch(nb, tmp_path, capsys):
    from newsbot.cli import main

    d = ["--data-dir", str(nb.data_dir)]
    assert main([*d, "follow", "add", QUESTION]) == 0
    assert "following #1 in global" in capsys.readouterr().out
    assert main([*d, "follow", "add", "  "]) == 2
    assert "the question is empty" in capsys.readouterr().err
    assert main([*d, "watch", "--once"]) == 0
    assert "Standing question" not in capsys.readouterr().out  # nothing new yet
    assert main([*d, "ingest", str(article(tmp_path, "shapps", "Shapps named", SHAPPS))]) == 0
    capsys.readouterr()
    assert main([*d, "watch", "--once"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Standing question #1: {QUESTION}") and ANSWER in out
    assert "https://example.com/shapps" in out
    assert main([*d, "watch", "--once"]) == 0  # printed once
    assert "Standing question" not in capsys.readouterr().out
    assert main([*d, "follow", "list"]) == 0
    assert "last answered" in capsys.readouterr().out
    assert main([*d, "follow", "remove", "7"]) == 2
    assert "no standing question #7" in capsys.readouterr().err
    assert main([*d, "follow", "remove", "1"]) == 0
    assert main([*d, "follow", "list"]) == 0
    assert capsys.readouterr().out.endswith("stopped following #1\n0 standing questions\n")


def test_term_sets_match_as_plain_sets_do():
    # TermSet's binary search must give exactly what term_match's scan gives.
    from retrieval.tokens import TermSet, term_match, tokens

    text = (SHAPPS + UNRELATED + (SAMPLES / "interfax-wallace-2022-01-27.txt").read_text())
    terms = set(tokens(text))
    probes = terms | {t[:k] for t in terms for k in range(3, len(t))} | {
        t + s for t in list(terms)[:50] for s in ("s", "ing", "ed")} | {"germani", "meet", "x"}
    fast = TermSet(terms)
    assert all(term_match(p, terms) == term_match(p, fast) for p in probes)


def test_new_articles_are_matched_in_batches(nb, store, tmp_path, monkeypatch):
    import retrieval.follow

    monkeypatch.setattr(retrieval.follow, "SCAN_BATCH", 1)
    add_follow(nb, store, QUESTION, ["global"], CLI)
    nb.ingest([article(tmp_path, "fish", "Norway passes fisheries budget", UNRELATED),
               article(tmp_path, "shapps", "Shapps named defence secretary", SHAPPS)])
    (hit,) = check_follows(nb, store, CLI)
    assert hit.citation.article_id == "shapps"
