"""Answer quality on a question set: supported@k, passage recall@k, MRR, abstention, latency.

A question is *supported* at k when one of its gold answers (case-insensitive, whitespace
normalised) occurs inside one of the first k cited sentences; a passage *holds* the answer when
the answer occurs in its text.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from retrieval.errors import NewsbotError
from retrieval.models import Answer
from retrieval.tokens import normalise

# The configurations `newsbot eval` compares; "reader" is what `ask` and the bot use (hybrid
# retrieval, then the trained reader); "heuristic" is the same retrieval with the hand-weighted
# scorer alone; "dense" and "bm25" compare retrieval, read by the reader.
CONFIGS: dict[str, dict[str, Any]] = {
    "reader": {"mode": "hybrid"},
    "heuristic": {"mode": "hybrid", "reader": False},
    "dense": {"mode": "dense"},
    "bm25": {"mode": "bm25"},
}
DEFAULT_CONFIG = "reader"
RECALL_AT = (5, 10, 20)


@dataclass(slots=True)
class EvalQuestion:
    id: str
    question: str
    answers: list[str]
    question_date: str | None = None


@dataclass(slots=True)
class QuestionResult:
    id: str
    question: str
    answers: list[str]
    question_date: str | None
    abstained: bool
    score: float
    held_by: int | None  # the first citation (n) whose sentence holds a gold answer
    passage_rank: int | None  # 1-based rank of the first passage that holds one
    latency_ms: float
    short_answer: str | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    passages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def cause(self) -> str:
        """Why a question was not supported at 1, for grouping failures."""
        if self.held_by == 1:
            return "supported"
        if self.abstained and self.passage_rank is not None:
            return "abstained although a passage held the answer"
        if self.passage_rank is None:
            return "answer in no retrieved passage"
        if self.held_by is not None:
            return "answer cited, but not first"
        return "passage found, wrong sentence cited"


@dataclass(slots=True)
class Metrics:
    n: int
    supported_at_1: float
    supported_at_3: float
    recall: dict[int, float]
    mrr: float
    abstention: float
    latency_p50_ms: float
    latency_p95_ms: float
    short_exact: float = 0.0  # a short answer shown, equal (normalised) to a gold answer
    short_wrong: float = 0.0  # a short answer shown that is not


def holds(text: str, answers: Iterable[str]) -> bool:
    t = normalise(text)
    return any(normalise(a) and normalise(a) in t for a in answers)


def load_questions(path: Path) -> list[EvalQuestion]:
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise NewsbotError(f"cannot read questions {path}: {e}") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            answers = d["answers"]
            if isinstance(answers, str):
                answers = [answers]
            out.append(EvalQuestion(str(d.get("id", lineno)), str(d["question"]),
                                    [str(a) for a in answers], d.get("question_date")))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise NewsbotError(f"{path}:{lineno}: not a question record ({e})") from None
    if not out:
        raise NewsbotError(f"{path} holds no questions")
    return out


def judge(q: EvalQuestion, answer: Answer, latency_ms: float) -> QuestionResult:
    held_by = next((c.n for c in answer.citations if holds(c.quote, q.answers)), None)
    rank = next((i for i, p in enumerate(answer.passages, 1) if holds(p.text, q.answers)), None)
    return QuestionResult(
        id=q.id, question=q.question, answers=q.answers, question_date=q.question_date,
        abstained=answer.abstained, score=round(answer.score, 4), held_by=held_by,
        passage_rank=rank, latency_ms=round(latency_ms, 2),
        short_answer=answer.short_answer.text if answer.short_answer else None,
        citations=[{"n": c.n, "quote": c.quote, "article_id": c.article_id,
                    "score": c.score} for c in answer.citations],
        passages=[{"rank": i, "article_id": p.article_id, "chunk": p.chunk_index,
                   "published": p.published, "holds_answer": holds(p.text, q.answers)}
                  for i, p in enumerate(answer.passages, 1)])


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))] if s else 0.0


def metrics(results: list[QuestionResult], ks: Iterable[int] = RECALL_AT) -> Metrics:
    n = len(results)
    if not n:
        raise ValueError("no results")

    def share(pred: Callable[[QuestionResult], bool]) -> float:
        return sum(1 for r in results if pred(r)) / n

    lat = [r.latency_ms for r in results]
    return Metrics(
        n=n,
        supported_at_1=share(lambda r: r.held_by == 1),
        supported_at_3=share(lambda r: r.held_by is not None and r.held_by <= 3),
        recall={k: share(lambda r, k=k: r.passage_rank is not None and r.passage_rank <= k)
                for k in ks},
        mrr=sum(1 / r.passage_rank for r in results if r.passage_rank) / n,
        abstention=share(lambda r: r.abstained),
        latency_p50_ms=statistics.median(lat),
        latency_p95_ms=percentile(lat, 95),
        short_exact=share(lambda r: r.short_answer is not None and exact(r.short_answer,
                                                                          r.answers)),
        short_wrong=share(lambda r: r.short_answer is not None and not exact(r.short_answer,
                                                                              r.answers)),
    )


def exact(short: str, answers: Iterable[str]) -> bool:
    return normalise(short) in {normalise(a) for a in answers}


def run(nb, questions: list[EvalQuestion], libraries: list[str], config: str = DEFAULT_CONFIG,
        depth: int = max(RECALL_AT), progress: Callable[[int], None] | None = None,
        ) -> list[QuestionResult]:
    """Answer every question as `ask` would, dated as of the question's date. Extractive
    answers only: the report measures retrieval and citation, and a configured LLM is not
    asked (its own error rates are measured on labelled claims, docs/eval/verification.md)."""
    options = CONFIGS[config]
    results = []
    for q in questions:
        t = time.perf_counter()
        answer = nb.ask(q.question, libraries=libraries, depth=depth, as_of=q.question_date,
                        llm=False, **options)
        results.append(judge(q, answer, (time.perf_counter() - t) * 1000))
        if progress:
            progress(1)
    return results


def write_jsonl(results: list[QuestionResult], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in results:
            f.write(json.dumps({**asdict(r), "cause": r.cause}, ensure_ascii=False) + "\n")


def summary_table(by_config: dict[str, Metrics]) -> str:
    head = ("| config | supported@1 | supported@3 | "
            + " | ".join(f"recall@{k}" for k in RECALL_AT)
            + " | MRR | abstention | short exact | short wrong | p50 ms | p95 ms |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, m in by_config.items():
        lines.append(
            f"| {name} | {m.supported_at_1:.3f} | {m.supported_at_3:.3f} | "
            + " | ".join(f"{m.recall[k]:.3f}" for k in RECALL_AT)
            + f" | {m.mrr:.3f} | {m.abstention:.3f} | {m.short_exact:.3f} | "
              f"{m.short_wrong:.3f} | {m.latency_p50_ms:.0f} | {m.latency_p95_ms:.0f} |")
    return "\n".join(lines)


def causes(results: list[QuestionResult], examples: int = 8) -> str:
    """Failures grouped by cause, with example question ids (the ids, not the text)."""
    groups: dict[str, list[str]] = {}
    for r in results:
        groups.setdefault(r.cause, []).append(r.id)
    lines = ["| cause | questions | examples (ids) |", "|---|---|---|"]
    for cause, ids in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(ids[:examples]) if cause != "supported" else ""
        lines.append(f"| {cause} | {len(ids)} | {shown} |")
    return "\n".join(lines)


def charts(by_config: dict[str, list[QuestionResult]], out: Path,
           default: str = DEFAULT_CONFIG) -> list[str]:
    """recall@k curves per configuration, and the latency histogram of the default."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = list(range(1, max(RECALL_AT) + 1))
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, results in by_config.items():
        n = len(results)
        ax.plot(ks, [sum(1 for r in results if r.passage_rank and r.passage_rank <= k) / n
                     for k in ks], marker=".", label=name)
    ax.set(xlabel="passages retrieved (k)", ylabel="recall@k (answer in a passage)",
           ylim=(0, 1), title="Passage recall@k")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "recall_at_k.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    lat = [r.latency_ms for r in by_config.get(default) or next(iter(by_config.values()))]
    ax.hist(lat, bins=30)
    ax.axvline(percentile(lat, 95), color="k", linestyle="--", label="p95")
    ax.set(xlabel="ms per question (warm)", ylabel="questions",
           title=f"Latency, {default if default in by_config else 'first config'}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    plt.close(fig)
    return ["recall_at_k.png", "latency.png"]
