"""Whole sentences: pysbd's fragments are merged back, real sentence ends are kept, offsets stay
exact, the 600-character cap holds and splitting stays linear. Every text here is invented."""

from __future__ import annotations

import time

import pytest

from retrieval.fragments import continues
from retrieval.split import split_sentences


def texts(text: str, **kw) -> list[str]:
    sentences = split_sentences("x", text, **kw)
    for s in sentences:
        assert text[s.start:s.end] == s.text
    return [s.text for s in sentences]


# Each is one sentence that pysbd cuts in two (checked with merge=False, so the test shows the
# merge doing the work), one per kind of unit the issue lists.
WHOLE = [
    ("The hearing opens at 10 a.m. ET Tuesday in the old courthouse, officials said.",
     "ET Tuesday"),
    ("Polls close at 8 p.m. EST Wednesday across the state.", "EST Wednesday"),
    ("The launch is set for 2:15 a.m. EDT Monday from the coast.", "EDT Monday"),
    ("Tickets go on sale at 9 a.m. Nov. 20 online.", "Nov. 20"),
    ("Guards were posted at the statehouse after the Jan. 6. riot and stayed for weeks.",
     "riot and"),
    ("Committee chairman Walter Brandt, D-Vt., and his deputy agreed on the plan on Friday.",
     ", and his deputy"),
    ("Rep. Tomas Ruiz, D-Calif. , chairs the panel.", ", chairs"),
    ("Hundreds of jobs at Harlow Motor Co.\u2019s Tennessee plant were cut last year.",
     "\u2019s Tennessee"),
    ("Hundreds of jobs at Harlow Motor Co. 's Tennessee plant were cut last year.",
     "'s Tennessee"),
    ("The exhibition runs Oct. 12-Dec. 20 at the city museum.", "20 at"),
    ("Schools close for Martin Luther King Jr. Day next week.", "Day next"),
    ("Parades marked Martin Luther King Jr. Day.", "Day."),
    ("He joined Dunmore Bros. Discovery in 2022.", "Discovery"),
    ("She hosted a nightly show on E! News for six years.", "News for"),
    ("The story first aired on E! News.", "News."),
    ("The deal was signed by then-Gov. Mark Ellison, a Republican.", "Mark Ellison"),
    ("The pitcher, Dale Harmon Jr. \u2014 who threw the final out \u2014 retired.", "\u2014 who"),
    ("Was this a shrewd choice? \u2013 but few voters agreed.", "\u2013 but"),
    ("Listen to the song Are We Home Yet? , which topped the charts in May.", ", which"),
    ("\"It was 'just fine,'\" Dale Harmon said later.", "Dale Harmon said"),
]


@pytest.mark.parametrize(("text", "cut"), WHOLE)
def test_units_a_reader_cannot_split_stay_whole(text, cut):
    before = texts(text, merge=False)
    assert len(before) == 2 and before[1].startswith(cut.strip(" ")), before
    assert texts(text) == [text]


# Real sentence ends after the same abbreviations: the next piece starts a sentence of its own.
ENDS = [
    ("He arrived at 10 a.m.", "The talks began at noon."),
    ("The ferry left at 6 p.m.", "Passengers cheered."),
    ("The film was backed by Warner Bros.", "But critics were unkind."),
    ("The song was first recorded by Hank Porter Jr.", "He later toured Europe."),
    ("The show was hosted by Ant and Dec.", "Their ratings rose."),
    ("Apple reported its results on Monday.", "iPhone sales rose by a tenth."),
    ("It broke on E! News.", "The network declined to comment."),
    ("Parades marked Martin Luther King Jr. Day.", "Schools were shut."),
    ("The team trained hard all week. ...", "The coach was pleased."),
]


@pytest.mark.parametrize(("first", "second"), ENDS)
def test_real_sentence_ends_are_kept(first, second):
    assert texts(f"{first} {second}") == [first, second]


def test_a_list_label_joins_its_item():
    assert texts("c. 1,210 pounds", merge=False) == ["c.", "1,210 pounds"]
    assert texts("c. 1,210 pounds") == ["c. 1,210 pounds"]


@pytest.mark.parametrize(("prev", "head", "joined"), [
    ("It will take years to rebuild.", "\"", True),  # a closing quote pysbd left alone
    ("It is a strange world.", "\u2019\u2019", True),
    ("She was interviewed on Monday.", "\u201dAnd they were", False),  # a mistyped opener
    ("It will air from 9 to 11 p.m.", "ET.", True),
    ("The module docked at 1:50 p.m.", "Sunday.", True),
    ("He arrived at 10 a.m.", "Tuesday's talks began", False),
    ("The clinic is on Elm Dr.", "The doctor is in.", False),  # a street, not a title
    ("He consulted Dr.", "Lena Ortiz on Monday.", True),
    ("The learners were aged 16 to", "18. These are", True),  # pysbd cut with no stop
    ("They studied in Oxford and Harvard\"", "Currently the project", False),
    ("\"It was 'just fine,'\"", "Dale Harmon said.", True),
    ("The deal was done.", "\u2014 SpaceX launched later.", False),
    ("It was ranked No.", "1 in the world.", True),
])
def test_seam_rules(prev, head, joined):
    assert continues(prev, head) is joined


def test_merging_never_crosses_a_paragraph():
    text = "Polls close at 8 p.m.\nEST is the zone the state uses."
    assert texts(text) == ["Polls close at 8 p.m.", "EST is the zone the state uses."]


def test_merged_offsets_are_exact_after_a_dateline_and_across_paragraphs():
    text = ("Oslo. June 2. NEWSBOT SAMPLE WIRE - Talks open at 10 a.m. ET Tuesday.\n\n"
            "Committee chairman Walter Brandt, D-Vt., said the plan would pass. "
            "He arrived at 10 a.m. The talks began at noon.")
    body = text.index("Talks open")
    sentences = split_sentences("x", text, body)
    assert [s.text for s in sentences] == [
        "Talks open at 10 a.m. ET Tuesday.",
        "Committee chairman Walter Brandt, D-Vt., said the plan would pass.",
        "He arrived at 10 a.m.", "The talks began at noon."]
    for i, s in enumerate(sentences):
        assert s.index == i and text[s.start:s.end] == s.text


def test_the_cap_still_holds_after_merging():
    text = "Committee chairman Walter Brandt, D-Vt., and his deputy agreed on the plan on Friday."
    # Joined, the two pieces would pass a 60-character cap: they stay apart, each within it.
    capped = texts(text, max_chars=60)
    assert capped == ["Committee chairman Walter Brandt, D-Vt.",
                      ", and his deputy agreed on the plan on Friday."]
    long_first = "The minister, " + "who had travelled widely, " * 21 + "met Walter Brandt, D-Vt."
    text = long_first + ", and his deputy on Friday."
    assert 580 < len(long_first) < 600 < len(text)
    assert texts(text) == [long_first, ", and his deputy on Friday."]


def test_a_100k_paragraph_full_of_seams_splits_in_bounded_time():
    text = ("Talks resume at 10 a.m. ET Tuesday in Berlin, said Walter Brandt, D-Vt. , "
            "after the Jan. 6. riot. ") * 1_200
    text = text[:100_000]
    started = time.perf_counter()
    sentences = split_sentences("a", text)
    assert time.perf_counter() - started < 4.0  # the bound the plain 100k paragraph has
    assert all(text[s.start:s.end] == s.text for s in sentences)
    assert all(len(s.text) <= 600 for s in sentences)
    assert sentences[0].text == ("Talks resume at 10 a.m. ET Tuesday in Berlin, said Walter "
                                 "Brandt, D-Vt. , after the Jan. 6. riot.")


# What the splitter makes of the bundled samples and of every text above, for each
# SPLITTER_VERSION. Stored articles are re-split on re-ingest only when the version moves, so a
# change to the sentences cut must bump it (retrieval/models.py) and record its fingerprint here.
SPLIT_INPUTS = ["interfax-wallace-2022-01-27.txt", "2021-11-30-sanctions-warning.txt",
                "2022-01-24-dutch-minister-berlin.txt", "2022-02-02-french-minister-moscow.md",
                "2022-02-09-hungary-slovakia-visit.txt", "2022-03-15-eu-sanctions-package.txt"]
SPLIT_FINGERPRINTS = {
    2: "f3bdc8dc4f7ff8b4",
}


def test_a_change_to_the_sentences_cut_bumps_the_splitter_version():
    import hashlib
    import json

    from retrieval.models import SPLITTER_VERSION
    from retrieval.split import make_chunks
    from tests.conftest import SAMPLES

    sources = [(SAMPLES / name).read_text(encoding="utf-8") for name in SPLIT_INPUTS]
    sources += [t for t, _ in WHOLE] + [f"{a} {b}" for a, b in ENDS]
    cut = []
    for text in sources:
        for max_chars in (600, 120):  # the cap on a sentence's length cuts too
            sentences = split_sentences("x", text, max_chars=max_chars)
            chunks = make_chunks("x", text, sentences, 5, 2)
            cut.append([[(s.start, s.end) for s in sentences],
                        [(c.start, c.end, c.first_sentence, c.last_sentence) for c in chunks]])
    got = hashlib.sha256(json.dumps(cut).encode()).hexdigest()[:16]
    assert SPLIT_FINGERPRINTS.get(SPLITTER_VERSION) == got, (
        f"the splitter's output is {got}: if the sentences or passages it cuts changed, bump "
        "SPLITTER_VERSION in retrieval/models.py and record the fingerprint under it (if "
        "only this test's inputs changed, record it under the same version)")
