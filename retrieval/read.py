"""The reader: a small cross-encoder, trained here from the packaged MiniLM, that reads each
(question, candidate sentence in its context) pair and scores how well the sentence answers.

It runs between search and citation: ``cite.score_candidates`` ranks every sentence of the top
passages cheaply, the reader re-reads the best few, and its calibrated probability orders them
and decides abstention. It also picks the short answer, a span of the top sentence.

The weights ship inside the package (``retrieval/reader/``), fp16 safetensors, and load offline
like the embedding model. Training lives in ``retrieval/train_reader.py``, which serving never
imports.
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.errors import NewsbotError

if TYPE_CHECKING:
    from retrieval.cite import Candidate

SHIPPED = Path(__file__).resolve().parent / "reader"
MAX_LENGTH = 128  # tokens of question + sentence + context; longer inputs are cut from context
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "reader.json"


class ReaderError(NewsbotError):
    """The reader's weights are missing or unreadable (a one-line error, exit 2)."""


def pair_text(sentence: str, title: str, previous: str) -> str:
    """The second text of a pair: the sentence first (truncation cuts context, never it), then
    what tells the reader who "he" or "the talks" are."""
    return f"{sentence} [SEP] {title} | {previous}".strip()


# -- short answers: spans of the cited sentence that can answer a question ---------------------
_CAP_RUN = r"(?:[A-Z][\w.'\u2019&-]*|\d[\d,.]*)(?:\s+(?:of|for|the|and|de|von|al|bin)\s+" \
           r"[A-Z][\w.'\u2019&-]*|\s+[A-Z][\w.'\u2019&-]*)*"
_NUMBER = (r"(?:[$\u00a3\u20ac]\s?)?\d[\d,]*(?:\.\d+)?(?:\s?(?:%|percent|per cent|"
           r"million|billion|trillion|thousand|hundred))?"
           r"(?:\s(?:[a-z]+-)?[a-z]+)?")
_WORDNUM = (r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|"
            r"thirty|forty|fifty|hundreds?|thousands?|millions?|billions?|dozens?|"
            r"half|a third|a quarter|three-quarters)\b(?:\s(?:of\s)?[a-z]+)?")
_SPAN_PATTERNS = [("name", re.compile(_CAP_RUN)), ("number", re.compile(_NUMBER)),
                  ("number", re.compile(_WORDNUM, re.IGNORECASE))]
_MONTHS = ("January February March April May June July August September October November "
           "December").split()
_QTYPES = ("who", "what", "which", "when", "where", "how many", "how much", "other")


def question_type(question: str) -> str:
    q = " ".join(question.lower().split())
    for t in ("how many", "how much"):
        if t in q:
            return t
    for t in ("who", "when", "where", "which", "what"):
        if re.search(rf"\b{t}\b", q):
            return t
    return "other"


def candidate_spans(sentence: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of names, numbers and dates in a sentence, longest first at each
    start, overlapping allowed: the span model picks one."""
    out: dict[tuple[int, int], str] = {}
    for kind, pat in _SPAN_PATTERNS:
        for m in pat.finditer(sentence):
            s, e = m.start(), m.end()
            text = sentence[s:e].rstrip(".,;:'\u2019")
            e = s + len(text)
            if e <= s or (kind == "name" and s == 0 and " " not in text and len(text) < 4):
                continue
            if kind == "name" and any(text.startswith(mo) for mo in _MONTHS):
                kind = "date"
            out.setdefault((s, e), kind)
            if kind == "number":  # the bare number too, without the word after it
                bare = re.match(r"[$\u00a3\u20ac]?\s?[\d,.]+(?:\s?%)?", text)
                if bare and bare.end() < len(text):
                    out.setdefault((s, s + len(bare.group().rstrip(",."))), "number")
    return [(s, e, k) for (s, e), k in out.items()]


def span_features(question: str, sentence: str, start: int, end: int, kind: str) -> list[float]:
    """Features of one span as an answer to the question: its kind against what is asked, and
    how much of it the question already says (an answer is rarely in its question)."""
    from retrieval.tokens import tokens

    qtype = question_type(question)
    qtok = set(tokens(question))
    stok = tokens(sentence[start:end])
    in_q = sum(1 for t in stok if t in qtok) / max(1, len(stok))
    text = sentence[start:end]
    year = bool(re.fullmatch(r"(?:19|20)\d\d", text))
    kinds = ("name", "number", "date")
    f = [1.0, in_q, float(in_q == 1.0), min(len(stok), 6) / 6, start / max(1, len(sentence)),
         float(year), float(text.lower() in question.lower())]
    for qt in _QTYPES:
        for k in kinds:
            f.append(float(qtype == qt and kind == k))
    return f


@dataclass(slots=True)
class Span:
    text: str
    start: int  # in the sentence
    end: int
    confidence: float


def best_span(question: str, sentence: str, weights: list[float], base: float) -> Span | None:
    """The likeliest answer span of ``sentence``; ``confidence`` also carries the sentence's
    own probability ``base``."""
    spans = candidate_spans(sentence)
    if not spans:
        return None
    w = np.asarray(weights, dtype=np.float64)
    feats = np.asarray([span_features(question, sentence, s, e, k) for s, e, k in spans])
    logits = feats @ w
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    i = int(np.argmax(probs))
    s, e, _ = spans[i]
    return Span(sentence[s:e], s, e, float(probs[i]) * base)


class Reader:
    """A cross-encoder with a logistic stack on top: p = sigmoid(a * logit + b * heuristic + c).
    Thread-safe; bf16 on CPUs with native support (AMX, avx512_bf16), else fp32."""

    def __init__(self, path: Path | str = SHIPPED, device: str = "auto",
                 candidates: int | None = None) -> None:
        self.path = Path(path)
        self.device_setting = device
        config_path = self.path / CONFIG_FILE
        if not (self.path / WEIGHTS_FILE).is_file() or not config_path.is_file():
            raise ReaderError(f"no reader at {self.path} (expected {WEIGHTS_FILE} and "
                              f"{CONFIG_FILE}); set NEWSBOT_READER=none for the heuristic "
                              f"scorer")
        try:
            self.config = json.loads(config_path.read_text(encoding="utf-8"))
            self.stack = [float(x) for x in self.config["stack"]]
            self.span_weights = [float(x) for x in self.config["span_weights"]]
            self.threshold = float(self.config["threshold"])
            self.span_threshold = float(self.config["span_threshold"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ReaderError(f"the reader's {config_path} is unreadable: {e}") from None
        self.candidates = candidates or int(self.config.get("candidates", 12))
        self._lock = threading.Lock()
        self._model = None
        self.dtype = "fp32"

    def load(self) -> Reader:
        if self._model is not None:
            return self
        import torch
        from sentence_transformers import CrossEncoder

        from retrieval.embed import pick_device

        device = pick_device(self.device_setting)
        try:
            model = CrossEncoder(str(self.path), num_labels=1, max_length=MAX_LENGTH,
                                 device=device, local_files_only=True)
        except Exception as e:  # torch/safetensors raise many kinds for a damaged file
            raise ReaderError(f"cannot load the reader from {self.path}: "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
                              ) from None
        model.model.float()
        if device == "cpu" and _cpu_bf16():
            model.model.to(torch.bfloat16)
            self.dtype = "bf16"
        elif device.startswith("cuda"):
            model.model.half()
            self.dtype = "fp16"
        model.model.eval()
        self._model = model
        return self

    def logits(self, question: str, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        import torch

        self.load()
        with self._lock, torch.inference_mode():
            out = self._model.predict([(question, t) for t in texts], batch_size=32,
                                      activation_fn=torch.nn.Identity(), convert_to_numpy=True,
                                      show_progress_bar=False)
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def probability(self, logit: float, heuristic: float) -> float:
        a, b, c = self.stack
        return 1.0 / (1.0 + math.exp(-(a * logit + b * heuristic + c)))

    def rerank(self, question: str, ranked: list[Candidate],
               previous: dict[tuple[str, str, int], str]) -> list[Candidate]:
        """The top ``candidates`` of the heuristic ranking, re-scored by the reader: their
        ``score`` and ``relevance`` become the reader's probability. The rest follow, below
        every re-read candidate."""
        head, tail = ranked[: self.candidates], ranked[self.candidates:]
        texts = [pair_text(c.quote, c.passage.title,
                           previous.get((c.library, c.article_id, c.index), ""))
                 for c in head]
        for c, logit in zip(head, self.logits(question, texts), strict=True):
            c.relevance = c.score = self.probability(float(logit), c.relevance)
        head.sort(key=lambda c: (-c.score, c.passage_rank, c.index))
        for c in tail:
            c.relevance = c.score = 0.0
        return head + tail

    def short_answer(self, question: str, sentence: str, probability: float) -> Span | None:
        span = best_span(question, sentence, self.span_weights, probability)
        return span if span and span.confidence >= self.span_threshold else None


def _cpu_bf16() -> bool:
    """True where the CPU computes bf16 natively (AMX or avx512_bf16); elsewhere bf16 is
    emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def load_reader(setting: str, device: str = "auto") -> Reader | None:
    """``NEWSBOT_READER``: empty = the shipped reader, ``none`` = the heuristic scorer only,
    anything else = a path to a reader directory."""
    if setting.strip().lower() == "none":
        return None
    return Reader(Path(setting).expanduser() if setting.strip() else SHIPPED, device).load()
