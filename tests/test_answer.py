"""Answers over the bundled samples: the reference question, abstention, exact quotes."""

from __future__ import annotations

import pytest

from tests.conftest import LAMBRECHT, REFERENCE_QUESTION, SAMPLES

QUESTIONS = [
    REFERENCE_QUESTION,
    "how long did the French minister's talks in Moscow last?",
    "what did EU ministers ban in March?",
    "why was the gas pipeline decision delayed?",
    "who did the Canadian defence minister meet in Bratislava?",
]


def test_reference_question_cites_lambrecht_sentence_first(sample_bot):
    answer = sample_bot.ask(REFERENCE_QUESTION)
    assert not answer.abstained
    first = answer.citations[0]
    assert first.n == 1
    assert LAMBRECHT in first.quote
    assert (first.source, first.place, first.published) == ("Interfax", "London", "2022-01-27")
    assert first.article_id == "interfax-wallace-2022-01-27"
    assert "[1]" in answer.answer and LAMBRECHT in answer.answer


@pytest.mark.parametrize("question", QUESTIONS)
def test_every_quote_is_the_article_text_at_its_offsets(sample_bot, question):
    answer = sample_bot.ask(question)
    assert answer.citations, question
    for c in answer.citations:
        article, sentences = sample_bot.catalog.load("global", c.article_id)
        assert article.text[c.start : c.end] == c.quote
        assert any(s.start == c.start and s.end == c.end for s in sentences)
        assert c.title == article.title and c.source == article.source
    # The answer is made only of cited text and markers.
    rest = answer.answer
    for c in answer.citations:
        rest = rest.replace(f"{c.quote} [{c.n}]", "")
    assert rest.strip() == ""


def test_answers_are_told_apart_across_overlapping_articles(sample_bot):
    talks = sample_bot.ask("how long did the French minister's talks in Moscow last?")
    assert talks.citations[0].article_id == "2022-02-02-french-minister-moscow"
    assert "five hours" in talks.answer
    bratislava = sample_bot.ask("who did the Canadian defence minister meet in Bratislava?")
    assert "Tomas Kral" in bratislava.citations[0].quote


@pytest.mark.parametrize("question", [
    "what is the capital of Peru?",
    "who won the football world cup?",
    "how do I bake sourdough bread?",
])
def test_unrelated_question_abstains(sample_bot, question):
    answer = sample_bot.ask(question)
    assert answer.abstained
    assert answer.citations == []
    assert answer.answer.startswith("Not found in the articles")


def test_json_shape_is_the_cli_contract(sample_bot):
    d = sample_bot.ask(REFERENCE_QUESTION).to_dict()
    assert set(d) == {"question", "answer", "abstained", "citations", "passages", "timings_ms",
                      "score", "generator", "note", "verification", "short_answer", "reader"}
    assert (d["generator"], d["note"], d["verification"]) == ("extractive", "", [])
    # The shipped reader orders the citations by its probability and gives the short answer.
    assert d["reader"].startswith("reader (") and 0.0 <= d["citations"][0]["score"] <= 1.0
    assert set(d["short_answer"]) == {"text", "article_id", "start", "end"}
    assert {"n", "quote", "article_id", "title", "source", "published", "url", "start", "end",
            "score"} <= set(d["citations"][0])
    assert d["passages"] and {"article_id", "text", "score", "cited"} <= set(d["passages"][0])
    assert any(1 in p["cited"] for p in d["passages"])
    assert d["timings_ms"]["total_ms"] > 0


def test_reprinted_sentence_is_cited_once(make_bot, tmp_path):
    from tests.conftest import SAMPLES, write

    nb = make_bot()
    seed = (SAMPLES / "interfax-wallace-2022-01-27.txt").read_text()
    write(tmp_path / "in" / "interfax-wallace-2022-01-27.txt", seed)
    write(tmp_path / "in" / "reprint.txt", "Wallace abroad\n" + seed.split("\n", 1)[1])
    nb.ingest([tmp_path / "in"])
    answer = nb.ask(REFERENCE_QUESTION)
    quotes = [c.quote for c in answer.citations]
    assert len(quotes) == len(set(quotes))
    lambrecht = [c for c in answer.citations if LAMBRECHT in c.quote]
    assert len(lambrecht) == 1 and lambrecht[0].also_in


WIRE = """Harbour cranes idle in Lindholm

LINDHOLM, March 4 (Newsbot Sample Wire) - Crane operators at the port of Lindholm stopped work \
on Friday in a dispute over night shifts, the dockers' union said.
The union said the stoppage would last 48 hours.
"""


def test_wire_story_reprinted_by_several_outlets_is_cited_once(make_bot, tmp_path):
    from newsbot.render import answer_text
    from tests.conftest import write

    nb = make_bot()
    for outlet in ("Lindholm Post", "Harbour Daily", "Coast Courier"):
        slug = outlet.lower().replace(" ", "-")
        text = WIRE.replace("(Newsbot Sample Wire)", f"({outlet})")
        write(tmp_path / "in" / f"{slug}.txt", text.replace("the dockers' union said.",
                                                            "the dockers\u2019 union said."
                                                            if outlet == "Coast Courier"
                                                            else "the dockers' union said."))
    nb.ingest([tmp_path / "in"])
    answer = nb.ask("why did the Lindholm crane operators stop work?")
    first = answer.citations[0]
    assert "stopped work" in first.quote
    assert sum("stopped work" in c.quote for c in answer.citations) == 1
    assert len(first.also_in) == 2 and first.reported_by == "reported by 3 sources"
    assert sorted(first.sources) == ["Coast Courier", "Harbour Daily", "Lindholm Post"]
    assert "reported by 3 sources" in answer_text(answer)
    from bot.present import answer_embed

    assert "reported by 3 sources" in answer_embed(answer).fields[0].value


def test_rank_orders_candidates_as_ask_cites_them_and_honours_as_of(sample_bot):
    ranked = sample_bot.rank(REFERENCE_QUESTION, ["global"])
    answer = sample_bot.ask(REFERENCE_QUESTION)
    assert ranked[0].quote == answer.citations[0].quote and LAMBRECHT in ranked[0].quote
    # Asked as of the day before the Interfax article, it can't be a candidate.
    early = sample_bot.rank(REFERENCE_QUESTION, ["global"], as_of="2022-01-26")
    assert early and all(c.passage.published <= "2022-01-26" for c in early)
    assert not any(c.article_id == "interfax-wallace-2022-01-27" for c in early)


def test_without_a_reader_the_json_has_no_short_answer_and_scores_are_the_scorers(make_bot):
    nb = make_bot(reader="none")
    nb.ingest([SAMPLES])
    d = nb.ask(REFERENCE_QUESTION).to_dict()
    assert (d["short_answer"], d["reader"]) == (None, "")  # no reader: no short answer
    assert d["score"] >= d["citations"][0]["score"]
