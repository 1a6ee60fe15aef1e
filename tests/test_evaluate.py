"""`newsbot eval`: metrics checked against counts done by hand, and a run end to end."""

from __future__ import annotations

import json

import pytest

from newsbot.cli import main
from retrieval.evaluate import QuestionResult, holds, load_questions, metrics
from tests.conftest import ROOT, SAMPLES

QUESTIONS = ROOT / "tests" / "data" / "sample_questions.jsonl"


def result(held_by, rank, abstained=False, latency=10.0) -> QuestionResult:
    return QuestionResult(id="x", question="q", answers=["a"], question_date=None,
                          abstained=abstained, score=0.5, held_by=held_by, passage_rank=rank,
                          latency_ms=latency)


def test_metrics_match_hand_counts():
    results = [
        result(1, 1, latency=10),      # supported@1, passage 1
        result(2, 3, latency=20),      # supported@3 only, passage 3
        result(None, 7, latency=30),   # wrong sentence, passage 7
        result(None, 12, latency=40),  # passage 12: only recall@20
        result(None, None, True, 50),  # not retrieved, abstained
    ]
    m = metrics(results)
    assert m.n == 5
    assert m.supported_at_1 == pytest.approx(1 / 5)
    assert m.supported_at_3 == pytest.approx(2 / 5)
    assert m.recall == {5: pytest.approx(2 / 5), 10: pytest.approx(3 / 5),
                        20: pytest.approx(4 / 5)}
    assert m.mrr == pytest.approx((1 + 1 / 3 + 1 / 7 + 1 / 12) / 5)
    assert m.abstention == pytest.approx(1 / 5)
    assert m.latency_p50_ms == 30 and m.latency_p95_ms == 50
    assert [r.cause for r in results] == [
        "supported", "answer cited, but not first", "passage found, wrong sentence cited",
        "passage found, wrong sentence cited", "answer in no retrieved passage"]


def test_answer_matching_is_case_and_space_insensitive():
    assert holds("met Christina\n  LAMBRECHT in Berlin", ["christina lambrecht"])
    assert not holds("met Christina in Berlin", ["Christina Lambrecht"])
    assert not holds("anything", [""])


def test_question_file_errors_are_clear(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"question": "x", "answers": ["y"]}\n{"id": 2}\n')
    with pytest.raises(Exception, match=r"q.jsonl:2: not a question record"):
        load_questions(bad)


def test_eval_end_to_end_on_the_samples(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["--data-dir", str(tmp_path / "d"), "eval", str(QUESTIONS), "--articles",
                 str(SAMPLES), "--negative-articles", str(QUESTIONS.parent / "negative"),
                 "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    for config in ("reader", "heuristic", "dense", "bm25"):
        assert f"| {config} |" in printed
    rows = {json.loads(x)["id"]: json.loads(x) for x in
            (out / "questions" / "reader.jsonl").read_text().splitlines()}
    assert rows["s1"]["held_by"] == 1 and rows["s1"]["cause"] == "supported"
    assert rows["s4"]["abstained"] and rows["s4"]["passage_rank"] is None
    # Asked as of 2022-01-30, the March sanctions article does not exist yet.
    assert rows["s5"]["passage_rank"] is None
    assert all(p["published"] <= "2022-01-30" for p in rows["s5"]["passages"])
    m = metrics([QuestionResult(**{k: v for k, v in r.items() if k != "cause"})
                 for r in rows.values()])
    report = (out / "report.md").read_text()
    assert f"| reader | {m.supported_at_1:.3f} | {m.supported_at_3:.3f} |" in report
    assert "abstention, other articles only" in report
    for png in ("recall_at_k.png", "latency.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    negatives = [json.loads(x) for x in
                 (out / "questions" / "reader-negative.jsonl").read_text().splitlines()]
    assert all(r["abstained"] for r in negatives)


def test_eval_stays_extractive_when_an_llm_is_configured(make_bot):
    from retrieval.evaluate import run
    from tests.llm_stub import LLMStub

    stub = LLMStub().start()
    try:
        nb = make_bot(llm_provider="openai", llm_model="stub-model",
                      llm_base_url=f"{stub.base_url}/v1")
        nb.ingest([SAMPLES])
        results = run(nb, load_questions(QUESTIONS), ["global"])
        assert any(r.citations for r in results)
        assert stub.requests == []  # the report measures extractive answers, as it says
    finally:
        stub.stop()
