"""Check against the news: each claim supported, disputed or not found, with its citation, on
the bundled samples, the real model and a real store."""

from __future__ import annotations

import json

import pytest

from retrieval.check import MAX_CHARS, MAX_CLAIMS, check_text, claims_of
from retrieval.errors import QuestionError
from retrieval.verify import disagreement
from tests.test_cli import run

TRUE = "Ben Wallace will meet Russian Defense Minister Sergei Shoigu soon."
ALTERED_NAME = "The EU package bans the export of luxury goods to China."
ALTERED_NUMBER = "The EU package bans the export of luxury goods worth more than 900 euros."
NEGATED = "Wallace said he was optimistic about stopping an invasion."
UNRELATED = "A local bakery won the national sourdough championship."


def verdicts(nb, text: str) -> list[tuple[str, str]]:
    r = check_text(nb, text, ["global"])
    return [(v.verdict, v.citations[0].article_id if v.citations else "") for v in r.verdicts]


def test_one_true_claim_one_altered_number_one_unrelated(sample_bot):
    r = check_text(sample_bot, f"{TRUE} {ALTERED_NUMBER} {UNRELATED}", ["global"])
    assert [v.verdict for v in r.verdicts] == ["supported", "disputed", "not_found"]
    supported, disputed, missing = r.verdicts
    assert "Sergei Shoigu" in supported.citations[0].quote
    assert supported.citations[0].article_id == "interfax-wallace-2022-01-27"
    # The disputing sentence is quoted, and the reply says what differs.
    assert "300 euros" in disputed.citations[0].quote
    assert "900" in disputed.reason and "300" in disputed.reason
    assert missing.citations == [] and r.skipped == 0


@pytest.mark.parametrize("claim", [ALTERED_NAME, NEGATED])
def test_altered_name_and_negation_are_disputed(sample_bot, claim):
    assert verdicts(sample_bot, claim)[0][0] == "disputed"


def test_a_sentence_naming_more_does_not_dispute_a_claim():
    # "in Moscow" and "in Europe" sit after the same preposition, but the sentence does not
    # put Europe where the claim puts Moscow.
    assert disagreement("The talks in Moscow lasted five hours.",
                        "The talks lasted five hours and focused on arms control in Europe.") \
        is None
    assert "Christina" in disagreement(
        "Wallace met his German counterpart Olaf Scholz.",
        "Wallace met his German counterpart Christina Lambrecht in Berlin.")


def test_claims_are_sentences_without_mentions_links_or_markdown():
    text = ("<@123456> **Wallace met Lambrecht** in Berlin. Wow. See https://example.com/x "
            "for <#987> the report on the talks. <:pog:42>")
    assert claims_of(text) == ["Wallace met Lambrecht in Berlin.", "See for the report on "
                               "the talks."]


def test_at_most_five_claims_are_checked_and_the_rest_counted(sample_bot):
    text = " ".join([TRUE] * (MAX_CLAIMS + 2))
    r = check_text(sample_bot, text, ["global"])
    assert len(r.verdicts) == MAX_CLAIMS and r.skipped == 2


@pytest.mark.parametrize("text, message", [
    ("", "no text"), ("   \n ", "no text"), ("Wow. Yes!", "nothing to check"),
    ("x" * (MAX_CHARS + 1), "limit is 4,000"),
    # One 1,809-character sentence: a claim too long to search, named as a claim.
    ("The minister said " + "very " * 357 + "much!!", "the claim is 1,809 characters long"),
])
def test_empty_short_or_huge_text_is_refused(sample_bot, text, message):
    with pytest.raises(QuestionError, match=message):
        check_text(sample_bot, text, ["global"])


def test_cli_check_json_and_text(tmp_path, make_bot):
    from tests.conftest import SAMPLES

    data = tmp_path / "store"
    make_bot(data_dir=data).ingest([SAMPLES])
    r = run("--data-dir", str(data), "check", "--json", f"{TRUE} {UNRELATED}")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [c["verdict"] for c in out["claims"]] == ["supported", "not_found"]
    first = out["claims"][0]["citations"][0]
    assert "Sergei Shoigu" in first["quote"] and first["source"] == "Interfax"
    r = run("--data-dir", str(data), "check", "-", stdin=ALTERED_NUMBER)
    assert r.returncode == 0, r.stderr
    assert "the articles say otherwise" in r.stdout and "300 euros" in r.stdout
    r = run("--data-dir", str(data), "check", "")
    assert r.returncode == 2 and r.stderr.strip() == "newsbot: there is no text to check"
    assert "Traceback" not in r.stderr
