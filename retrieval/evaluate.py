"""Answer quality on a question set: supported@k, passage recall@k, MRR, abstention, latency.

A question is *supported* at k when one of its gold answers (case-insensitive, whitespace
normalised) occurs inside one of the first k cited sentences; a passage *holds* the answer when
the answer occurs in its text.

Written questions (newsqa-written, retrieval/written.py) carry a labelled sentence instead: they
are *cited* at k when one of the first k citations is that sentence, judged by offsets; a
passage holds the answer when it spans the labelled short answer. Their abstention is reported
on answerable and unanswerable questions apart, and every figure also by skill.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from retrieval import written
from retrieval.errors import NewsbotError
from retrieval.models import Answer
from retrieval.tokens import normalise
from retrieval.written import WrittenLabel

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
    label: WrittenLabel | None = None  # written questions only


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
    # Written questions only (None for RealTime QA ones):
    skill: str | None = None
    answerable: bool | None = None
    article_id: str | None = None  # the labelled article
    cited_at: int | None = None  # the first citation (n) that is the labelled sentence

    @property
    def cause(self) -> str:
        """Why a question was not supported at 1, for grouping failures."""
        if self.answerable is not None:
            return self._written_cause()
        if self.held_by == 1:
            return "supported"
        if self.abstained and self.passage_rank is not None:
            return "abstained although a passage held the answer"
        if self.passage_rank is None:
            return "answer in no retrieved passage"
        if self.held_by is not None:
            return "answer cited, but not first"
        return "passage found, wrong sentence cited"

    def _written_cause(self) -> str:
        if not self.answerable:
            return WRITTEN_ABSTAINED if self.abstained else "unanswerable, but answered"
        if self.cited_at == 1:
            return WRITTEN_CITED
        if self.abstained and self.passage_rank is not None:
            return "abstained although the labelled passage was retrieved"
        if self.passage_rank is None:
            return "labelled sentence in no retrieved passage"
        if self.cited_at is not None:
            return "labelled sentence cited, but not first"
        return "labelled passage found, other sentences cited"


WRITTEN_CITED = "labelled sentence cited first"
WRITTEN_ABSTAINED = "unanswerable, abstained"
GOOD_CAUSES = {"supported", WRITTEN_CITED, WRITTEN_ABSTAINED}  # listed without examples


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


def load_questions(path: Path, split: str | None = None) -> list[EvalQuestion]:
    """RealTime QA questions, or written ones (told apart by the file's first record; one
    file holds one kind). ``split`` keeps the written questions of that split only."""
    out = []
    kind: bool | None = None  # True: written questions
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise NewsbotError(f"cannot read questions {path}: {e}") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if kind is None:
                kind = written.is_written(d)
            elif written.is_written(d) != kind:
                raise ValueError("a written and a RealTime QA question in one file")
            if kind:
                label = written.label_from(d)
                if split and label.split != split:
                    continue
                out.append(EvalQuestion(str(d["id"]), str(d["question"]),
                                        [label.short_text] if label.answerable else [],
                                        d["published"], label))
                continue
            answers = d["answers"]
            if isinstance(answers, str):
                answers = [answers]
            out.append(EvalQuestion(str(d.get("id", lineno)), str(d["question"]),
                                    [str(a) for a in answers], d.get("question_date")))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise NewsbotError(f"{path}:{lineno}: not a question record ({e})") from None
    if split and kind is False:
        raise NewsbotError(f"--split selects written questions by their split; {path} holds "
                           "RealTime QA questions")
    if not out:
        raise NewsbotError(f"{path} holds no questions"
                           + (f" of split {split!r}" if split and kind else ""))
    return out


def check_labels(catalog, library: str, questions: list[EvalQuestion]
                 ) -> tuple[list[EvalQuestion], dict[str, str], list[str]]:
    """The written questions whose labels fit the stored articles, the labelled articles'
    texts (by id), and one line for each kind of misfit: a question whose article is not
    stored, or whose short answer is not at its offsets, would only be scored as a miss."""
    texts: dict[str, str] = {}
    kept, missing, moved = [], [], []
    for q in questions:
        label = q.label
        if label is None:
            kept.append(q)
            continue
        if label.article_id not in texts:
            state = catalog.state(library, label.article_id)
            texts[label.article_id] = (catalog.text_of(library, label.article_id)
                                       if state and state[1] == "ready" else "")
        text = texts[label.article_id]
        if not text:
            missing.append(q.id)
        elif label.short and text[label.short.start:label.short.end] != label.short_text:
            moved.append(q.id)
        else:
            kept.append(q)

    def line(ids: list[str], why: str) -> str:
        shown = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
        return f"{len(ids)} written question(s) left out: {why} ({shown})"

    problems = []
    if missing:
        problems.append(line(missing, f"their article is not in library {library!r}"))
    if moved:
        problems.append(line(moved, "the stored article does not have their short answer at "
                                    "its offsets"))
    return kept, {k: v for k, v in texts.items() if v}, problems


def judge(q: EvalQuestion, answer: Answer, latency_ms: float, text: str = ""
          ) -> QuestionResult:
    """Score one answer. ``text`` is a written question's labelled article as stored (to
    recognise a reprint of its sentence cited from another article)."""
    held_by = next((c.n for c in answer.citations if holds(c.quote, q.answers)), None)
    rank = next((i for i, p in enumerate(answer.passages, 1) if holds(p.text, q.answers)), None)
    label = q.label
    extra: dict[str, Any] = {}
    if label is not None:
        rank = next((i for i, p in enumerate(answer.passages, 1)
                     if p.article_id == label.article_id
                     and written.covers(label, p.start, p.end)), None)
        extra = {"skill": label.skill, "answerable": label.answerable,
                 "article_id": label.article_id,
                 "cited_at": next((c.n for c in answer.citations if written.is_labelled(
                     label, c.article_id, c.start, c.end, c.quote, c.also_in, text)), None)}
    return QuestionResult(
        id=q.id, question=q.question, answers=q.answers, question_date=q.question_date,
        abstained=answer.abstained, score=round(answer.score, 4), held_by=held_by,
        passage_rank=rank, latency_ms=round(latency_ms, 2),
        short_answer=answer.short_answer.text if answer.short_answer else None,
        citations=[{"n": c.n, "quote": c.quote, "article_id": c.article_id,
                    "score": c.score} for c in answer.citations],
        passages=[{"rank": i, "article_id": p.article_id, "chunk": p.chunk_index,
                   "published": p.published, "holds_answer": holds(p.text, q.answers)}
                  for i, p in enumerate(answer.passages, 1)], **extra)


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


@dataclass(slots=True)
class WrittenMetrics:
    """Figures on written questions. Citation, recall and short-answer figures are shares of
    the answerable questions; None where a set has no question to take a share of."""

    n: int
    answerable: int
    unanswerable: int
    cited_at_1: float | None
    cited_at_3: float | None
    recall: dict[int, float | None]  # a passage holding the short answer within the first k
    mrr: float | None
    short_exact: float | None
    short_wrong: float | None
    abstained_answerable: float | None
    abstained_unanswerable: float | None
    short_shown_unanswerable: float | None  # every one of them is wrong
    latency_p50_ms: float
    latency_p95_ms: float


def written_metrics(results: list[QuestionResult], ks: Iterable[int] = RECALL_AT
                    ) -> WrittenMetrics:
    if not results:
        raise ValueError("no results")
    yes = [r for r in results if r.answerable]
    no = [r for r in results if r.answerable is False]

    def share(rs: list[QuestionResult], pred: Callable[[QuestionResult], bool]) -> float | None:
        return sum(1 for r in rs if pred(r)) / len(rs) if rs else None

    lat = [r.latency_ms for r in results]
    return WrittenMetrics(
        n=len(results), answerable=len(yes), unanswerable=len(no),
        cited_at_1=share(yes, lambda r: r.cited_at == 1),
        cited_at_3=share(yes, lambda r: r.cited_at is not None and r.cited_at <= 3),
        recall={k: share(yes, lambda r, k=k: r.passage_rank is not None and r.passage_rank <= k)
                for k in ks},
        mrr=sum(1 / r.passage_rank for r in yes if r.passage_rank) / len(yes) if yes else None,
        short_exact=share(yes, lambda r: r.short_answer is not None
                          and exact(r.short_answer, r.answers)),
        short_wrong=share(yes, lambda r: r.short_answer is not None
                          and not exact(r.short_answer, r.answers)),
        abstained_answerable=share(yes, lambda r: r.abstained),
        abstained_unanswerable=share(no, lambda r: r.abstained),
        short_shown_unanswerable=share(no, lambda r: r.short_answer is not None),
        latency_p50_ms=statistics.median(lat),
        latency_p95_ms=percentile(lat, 95),
    )


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def written_summary_table(by_config: dict[str, WrittenMetrics]) -> str:
    head = ("| config | cited@1 | cited@3 | "
            + " | ".join(f"recall@{k}" for k in RECALL_AT)
            + " | MRR | short exact | short wrong | abstained, answerable | "
              "abstained, unanswerable | p50 ms | p95 ms |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, m in by_config.items():
        lines.append(
            f"| {name} | {fmt(m.cited_at_1)} | {fmt(m.cited_at_3)} | "
            + " | ".join(fmt(m.recall[k]) for k in RECALL_AT)
            + f" | {fmt(m.mrr)} | {fmt(m.short_exact)} | {fmt(m.short_wrong)} | "
              f"{fmt(m.abstained_answerable)} | {fmt(m.abstained_unanswerable)} | "
              f"{m.latency_p50_ms:.0f} | {m.latency_p95_ms:.0f} |")
    return "\n".join(lines)


def by_skill(results: list[QuestionResult]) -> dict[str, list[QuestionResult]]:
    """Written results per skill, in the report's order, then "all"."""
    groups: dict[str, list[QuestionResult]] = {}
    for r in results:
        groups.setdefault(r.skill or "unlabelled", []).append(r)
    return {**{skill: groups[skill] for skill in written.skill_order(groups)}, "all": results}


def by_skill_table(results: list[QuestionResult]) -> str:
    """skill, n, cited@1, cited@3, short exact, short wrong, abstained (of all its questions).
    An unanswerable question has no sentence to cite: its short wrong is any short answer."""
    lines = ["| skill | n | cited@1 | cited@3 | short exact | short wrong | abstained |",
             "|---|---|---|---|---|---|---|"]
    for skill, rs in by_skill(results).items():
        m = written_metrics(rs)
        wrong = m.short_wrong if m.answerable else m.short_shown_unanswerable
        abstained = sum(1 for r in rs if r.abstained) / len(rs)
        lines.append(f"| {skill} | {m.n} | {fmt(m.cited_at_1)} | {fmt(m.cited_at_3)} | "
                     f"{fmt(m.short_exact)} | {fmt(wrong)} | {abstained:.3f} |")
    return "\n".join(lines)


def run(nb, questions: list[EvalQuestion], libraries: list[str], config: str = DEFAULT_CONFIG,
        depth: int = max(RECALL_AT), progress: Callable[[int], None] | None = None,
        texts: dict[str, str] | None = None) -> list[QuestionResult]:
    """Answer every question as `ask` would, dated as of the question's date. Extractive
    answers only: the report measures retrieval and citation, and a configured LLM is not
    asked (its own error rates are measured on labelled claims, docs/eval/verification.md).
    ``texts``: the labelled articles of written questions, by id (from check_labels)."""
    options = CONFIGS[config]
    results = []
    for q in questions:
        t = time.perf_counter()
        answer = nb.ask(q.question, libraries=libraries, depth=depth, as_of=q.question_date,
                        llm=False, **options)
        latency = (time.perf_counter() - t) * 1000
        text = (texts or {}).get(q.label.article_id, "") if q.label else ""
        results.append(judge(q, answer, latency, text))
        if progress:
            progress(1)
    return results


WRITTEN_FIELDS = ("skill", "answerable", "article_id", "cited_at")


def write_jsonl(results: list[QuestionResult], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in results:
            row = asdict(r)
            if r.answerable is None:  # RealTime QA rows keep their shape
                for key in WRITTEN_FIELDS:
                    del row[key]
            f.write(json.dumps({**row, "cause": r.cause}, ensure_ascii=False) + "\n")


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
        shown = ", ".join(ids[:examples]) if cause not in GOOD_CAUSES else ""
        lines.append(f"| {cause} | {len(ids)} | {shown} |")
    return "\n".join(lines)


def charts(by_config: dict[str, list[QuestionResult]], out: Path,
           default: str = DEFAULT_CONFIG) -> list[str]:
    """recall@k curves per configuration (over answerable questions), and the latency
    histogram of the default."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = list(range(1, max(RECALL_AT) + 1))
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, results in by_config.items():
        answerable = [r for r in results if r.answerable is not False]
        n = max(1, len(answerable))
        ax.plot(ks, [sum(1 for r in answerable if r.passage_rank and r.passage_rank <= k) / n
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
