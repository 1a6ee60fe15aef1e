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
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.errors import NewsbotError, first_line

if TYPE_CHECKING:
    from retrieval.cite import Candidate

SHIPPED = Path(__file__).resolve().parent / "reader"
# Tokens of question + sentence + context; longer inputs are cut from the context. 80 because
# the re-read must fit the 150 ms answer budget on 2 cores (docs/reader.md).
MAX_LENGTH = 80
PRECISIONS = ("auto", "fp32", "bf16", "int8", "fp16")
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "reader.json"
HIDDEN_KEPT = 64  # re-read pairs whose hidden states are kept for the short answer


class ReaderError(NewsbotError):
    """The reader's weights are missing or unreadable (a one-line error, exit 2)."""


def pair_text(sentence: str, title: str, previous: str) -> str:
    """The second text of a pair: the sentence first (truncation cuts context, never it), then
    what tells the reader who "he" or "the talks" are. A title that is the sentence itself (one
    made from an untitled article's first line) is left out: no training pair repeats its
    sentence, and read twice a sentence scored under the floor (measured)."""
    if title.strip() == sentence.strip():
        title = ""
    return f"{sentence} [SEP] {title} | {previous}".strip()


def candidate_pairs(cands: list[Candidate], previous: dict[tuple[str, str, int], str]
                    ) -> list[str]:
    """``pair_text`` of each candidate, with its sentence before from ``previous``
    (``Newsbot.previous_sentences``)."""
    return [pair_text(c.quote, c.passage.title,
                      previous.get((c.library, c.article_id, c.index), "")) for c in cands]


def sentence_positions(sentence_len: int, offsets, seq_ids) -> list[bool]:
    """Which tokens of a tokenised (question, pair_text) may start or end a short answer: those
    of the candidate sentence (the pair's second text begins with it), and [CLS], which stands
    for "this sentence holds no answer"."""
    return [j == 0 or (sid == 1 and b > a and a < sentence_len)
            for j, (sid, (a, b)) in enumerate(zip(seq_ids, offsets, strict=True))]


MAX_SPAN_TOKENS = 16  # longer short answers are phrases a reader would rather quote whole


# A span ending in one of these keeps its full stop: "11:30 a.m.", "Chattanooga, Tenn.",
# "Nissan Motor Co." (written labels do; stripping it made each such answer wrong).
_ABBREVIATION_END = re.compile(
    r"(?:\b(?:[A-Za-z]\.){2,}|\b(?:Jr|Sr|Inc|Co|Corp|Ltd|Bros|Plc|St|Mt|Ft|No|Nos|Dr|Mr|Mrs|"
    r"Ms|Gov|Sen|Rep|Gen|Lt|Col|Sgt|Capt|Prof|Ave|Blvd|Jan|Feb|Mar|Apr|Aug|Sept|Sep|Oct|Nov|"
    r"Dec|vs|etc|Ala|Ariz|Ark|Calif|Colo|Conn|Del|Fla|Ga|Ill|Ind|Kan|Kans|Ky|La|Md|Mass|Mich|"
    r"Minn|Miss|Mo|Mont|Neb|Nev|Okla|Ore|Pa|Penn|Tenn|Tex|Vt|Va|Wash|Wis|Wyo)\.)$")


def trim_span(sentence: str, start: int, end: int) -> tuple[str, int]:
    """A decoded span's text without surrounding space and end punctuation (an
    abbreviation's full stop stays), and where it starts: serving and training's figures
    read spans alike."""
    raw = sentence[start:end]
    text = raw.strip().rstrip(",;:")
    while text.endswith(".") and not _ABBREVIATION_END.search(text):
        text = text[:-1].rstrip(",;:")
    return text, start + len(raw) - len(raw.lstrip())


def decode_span(starts: np.ndarray, ends: np.ndarray, allowed: list[bool],
                offsets) -> tuple[int, int, float] | None:
    """The likeliest span (characters in the sentence) and its probability from the span
    head's start and end logits. [CLS] ("no answer here") takes its share of both softmaxes, so
    a sentence that holds no answer leaves every span a low probability; None only when the
    sentence has no token left after truncation."""
    mask = np.asarray(allowed)

    def softmax(x: np.ndarray) -> np.ndarray:
        x = np.where(mask, x, -1e4)
        e = np.exp(x - x.max())
        return e / e.sum()

    ps, pe = softmax(starts.astype(np.float64)), softmax(ends.astype(np.float64))
    best, where = -1.0, None
    idx = np.flatnonzero(mask[1:]) + 1
    for i in idx:
        for j in idx[(idx >= i) & (idx < i + MAX_SPAN_TOKENS)]:
            p = ps[i] * pe[j]
            if p > best:
                best, where = p, (int(offsets[i][0]), int(offsets[j][1]))
    return None if where is None else (*where, float(best))


# -- short answers: spans of the cited sentence that can answer a question ---------------------
_CAP_RUN = re.compile(r"(?:[A-Z][\w.'\u2019&-]*|\d[\d,.]*)"
                      r"(?:\s+(?:of|for|the|and|de|von|al|bin)\s+[A-Z][\w.'\u2019&-]*"
                      r"|\s+[A-Z][\w.'\u2019&-]*|\s+\d[\d,.]*)*")
_NUMBER = (r"(?:[$\u00a3\u20ac]\s?)?\d[\d,]*(?:\.\d+)?(?:\s?(?:%|percent|per cent|"
           r"million|billion|trillion|thousand|hundred))?"
           r"(?:\s(?:[a-z]+-)?[a-z]+)?")
_WORDNUM = (r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|"
            r"thirty|forty|fifty|hundreds?|thousands?|millions?|billions?|dozens?|"
            r"half|a third|a quarter|three-quarters)\b(?:\s(?:of\s)?[a-z]+)?")
_SPAN_PATTERNS = [("number", re.compile(_NUMBER)),
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


_JOINERS = {"of", "for", "the", "and", "de", "von", "al", "bin", "la", "le", "du", "van", "der"}
_TITLES = {"mr", "mrs", "ms", "dr", "gov", "sen", "rep", "gen", "president", "prime", "minister",
           "secretary", "king", "queen", "prince", "pope", "judge", "justice", "in", "the", "a",
           "on", "at", "by", "after", "before", "since", "during", "when", "while", "but", "and",
           "it", "he", "she", "they", "we", "this", "that", "st", "lt", "col", "capt", "sgt"}
MAX_SPAN_WORDS = 5


def candidate_spans(sentence: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of names, numbers and dates in a sentence: every run of capitalised
    words and each of its shorter pieces ("Gov. Gavin Newsom" gives "Gavin Newsom" too;
    "Estonia and Finland" gives each), and numbers with and without their unit. The span
    model picks one."""
    out: dict[tuple[int, int], str] = {}
    for m in _CAP_RUN.finditer(sentence):
        words = [(w.start() + m.start(), w.end() + m.start())
                 for w in re.finditer(r"\S+", m.group())]
        for i in range(len(words)):
            for j in range(i, min(len(words), i + MAX_SPAN_WORDS)):
                first = sentence[words[i][0]:words[i][1]].lower()
                last = sentence[words[j][0]:words[j][1]].lower()
                if first in _JOINERS or last in _JOINERS:
                    continue
                _add(out, sentence, words[i][0], words[j][1], "name")
    for kind, pat in _SPAN_PATTERNS:
        for m in pat.finditer(sentence):
            _add(out, sentence, m.start(), m.end(), kind)
            bare = re.match(r"[$\u00a3\u20ac]?\s?[\d,.]+(?:\s?%)?", m.group())
            if bare and bare.end() < len(m.group()):
                _add(out, sentence, m.start(), m.start() + len(bare.group()), kind)
    return [(s, e, k) for (s, e), k in out.items()]


def _add(out: dict[tuple[int, int], str], sentence: str, s: int, e: int, kind: str) -> None:
    """Add sentence[s:e] trimmed of quotes, brackets, end punctuation and a possessive."""
    raw = sentence[s:e]
    text = raw.lstrip("\"'(\u201c\u2018")
    s += len(raw) - len(text)
    for suffix in ("'s", "\u2019s"):
        text = text.removesuffix(suffix)
    text = text.rstrip(".,;:'\u2019\")\u201d")
    e = s + len(text)
    if e <= s:
        return
    if kind == "name":
        if " " not in text and text.lower().rstrip(".") in _TITLES:
            return
        if any(text.startswith(mo) for mo in _MONTHS):
            kind = "date"
    out.setdefault((s, e), kind)


_TYPE_WORDS = {"who": "person name", "where": "place city country", "when": "date day year",
               "how many": "number", "how much": "amount number"}
_SKIP = {"is", "was", "are", "were", "did", "does", "do", "the", "a", "an", "has", "have", "had",
         "will", "would", "can", "could", "of", "in", "to"}


def type_phrase(question: str) -> str:
    """What kind of thing the question asks for: the noun after which/what ("which continent"
    -> "continent"), else a phrase for who/where/when/how many; "" when it can't tell."""
    q = " ".join(question.lower().split())
    m = re.search(r"\b(?:which|what)\s+([a-z'-]+)", q)
    if m and m.group(1) not in _SKIP:  # "what is ..." names no type
        return m.group(1)
    return _TYPE_WORDS.get(question_type(question), "")


@lru_cache(maxsize=64)
def _question_in_sentence(question: str, sentence: str
                          ) -> tuple[str, frozenset[str], tuple[tuple[int, int], ...]]:
    """What every span of one sentence shares: the question's type and terms, and where the
    sentence's words that the question also has stand (computed once, not once per span)."""
    from retrieval.tokens import tokens

    qtok = frozenset(tokens(question))
    shared = []
    for m in re.finditer(r"\w[\w'-]*", sentence):
        toks = tokens(m.group())
        if toks and toks[0] in qtok:
            shared.append((m.start(), m.end()))
    return question_type(question), qtok, tuple(shared)


def span_features(question: str, sentence: str, start: int, end: int, kind: str,
                  type_sim: float = 0.0) -> list[float]:
    """Features of one span as an answer to the question: its kind against what is asked, how
    much of it the question already says (an answer is rarely in its question), its shape."""
    from retrieval.tokens import tokens

    qtype, qtok, shared = _question_in_sentence(question, sentence)
    text = sentence[start:end]
    stok = tokens(text)
    in_q = sum(1 for t in stok if t in qtok) / max(1, len(stok))
    n_words = len(text.split())
    year = bool(re.fullmatch(r"(?:19|20)\d\d", text))
    before = sentence[max(0, start - 12):start].lower()
    after = sentence[end:end + 3]
    kinds = ("name", "number", "date")
    # Answers sit near the words the question shares with the sentence.
    near = [(ws, we) for ws, we in shared if not (start <= ws < end)]
    gaps = [len(sentence[min(end, ws):max(start, we)].split()) for ws, we in near]
    gap = min(gaps) if gaps else 30
    f = [1.0, in_q, float(in_q == 1.0), float(in_q == 0.0), start / max(1, len(sentence)),
         1.0 / (1 + gap), float(gap <= 2), float(not near), type_sim,
         float(year), float(text.lower() in question.lower()),
         *(float(n_words == k) for k in (1, 2, 3)), float(n_words >= 4),
         float(start == 0), float(after.startswith(("'s", "\u2019s"))),
         float(bool(re.search(r"\b(?:mr|mrs|ms|dr|gov|sen|rep|gen|president|minister)\.?\s$",
                              before))),
         float(bool(re.search(r"(?:an|ian|ese|ish)$", text))),  # demonyms: Cuban, Iranian
         float(any(ch.isdigit() for ch in text))]
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


def type_similarities(question: str, texts: list[str],
                      embed: Callable[[list[str]], np.ndarray] | None) -> list[float]:
    """Cosine of each span with what the question asks for ("continent": "Europe" is close)."""
    phrase = type_phrase(question)
    if embed is None or not phrase or not texts:
        return [0.0] * len(texts)
    vecs = embed([phrase, *texts])
    return [float(v @ vecs[0]) for v in vecs[1:]]


def best_span(question: str, sentence: str, weights: list[float], base: float,
              embed: Callable[[list[str]], np.ndarray] | None = None) -> Span | None:
    """The likeliest answer span of ``sentence``; ``confidence`` also carries the sentence's
    own probability ``base``."""
    spans = candidate_spans(sentence)
    if not spans:
        return None
    w = np.asarray(weights, dtype=np.float64)
    sims = type_similarities(question, [sentence[s:e] for s, e, _ in spans], embed)
    feats = np.asarray([span_features(question, sentence, s, e, k, sim)
                        for (s, e, k), sim in zip(spans, sims, strict=True)])
    logits = feats @ w
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    i = int(np.argmax(probs))
    s, e, _ = spans[i]
    return Span(sentence[s:e], s, e, float(probs[i]) * base)


class Reader:
    """A cross-encoder with a logistic stack on top: its probability p = sigmoid(a * logit + c)
    says whether a sentence states the answer, and the re-read sentences are ordered by
    a * logit + b * relevance + d * recency, with the scorer's relevance and recency bonus
    (reader.json's ``stack`` [a, b, c, d]; ``d`` is 0 where it has 3 terms, as an older one's).
    Thread-safe. Precision ``auto``: int8 on CPUs (ONNX Runtime, exported on first use into
    ``cache_dir``), fp32 on CUDA (half precision measured slower there for a model this small);
    bf16 only when asked for, on CPUs with native support (AMX, avx512_bf16)."""

    def __init__(self, path: Path | str = SHIPPED, device: str = "auto",
                 candidates: int | None = None, precision: str = "auto",
                 cache_dir: Path | None = None) -> None:
        self.path = Path(path)
        self.device_setting = device
        if precision not in PRECISIONS:
            raise ReaderError(f"unknown reader precision {precision!r}; use one of "
                              f"{', '.join(PRECISIONS)}")
        self.precision = precision
        config_path = self.path / CONFIG_FILE
        if not (self.path / WEIGHTS_FILE).is_file() or not config_path.is_file():
            raise ReaderError(f"no reader at {self.path} (expected {WEIGHTS_FILE} and "
                              f"{CONFIG_FILE}); set NEWSBOT_READER=none for the heuristic "
                              f"scorer")
        try:
            self.config = json.loads(config_path.read_text(encoding="utf-8"))
            self.stack = [float(x) for x in self.config["stack"]]
            if len(self.stack) not in (3, 4):
                raise ValueError(f"stack has {len(self.stack)} terms, not 3 or 4")
            self.span_weights = [float(x) for x in self.config["span_weights"]]
            self.span_threshold = float(self.config["span_threshold"])
            head = self.config.get("span_head")
            self.span_head = None if head is None else (
                np.asarray(head["weight"], dtype=np.float32).T,
                np.asarray(head["bias"], dtype=np.float32))
            floor = self.config.get("abstain_below")
            self.abstain_below = None if floor is None else float(floor)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ReaderError(f"the reader's {config_path} is unreadable: {e}") from None
        self.candidates = candidates or int(self.config.get("candidates", 6))
        self.max_length = int(self.config.get("max_length", MAX_LENGTH))
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        # The last re-reads' last hidden states, by (question, pair): the short answer's span
        # head reads [1]'s from here instead of running the model on it a second time.
        self._hidden: OrderedDict[tuple[str, str], tuple[np.ndarray, list, list]] = OrderedDict()
        self._model = None
        self._int8 = None  # the ONNX Runtime session, when int8
        self.dtype = "fp32"

    def load(self) -> Reader:
        if self._model is not None or self._int8 is not None:
            return self
        from retrieval.embed import pick_device
        from retrieval.precision import READER_PRECISIONS, PrecisionError, resolve

        device = pick_device(self.device_setting)
        want = self.precision
        if want != "fp16":  # the embedder's rules, with bf16 allowed (docs/precision.md)
            try:
                want = resolve(want, device, "NEWSBOT_READER_PRECISION", READER_PRECISIONS)
            except PrecisionError as e:
                raise ReaderError(str(e)) from None
        if want == "int8":
            self._load_int8()
        else:
            self._load_torch(device, want)
        self.dtype = want
        return self

    def _load_int8(self) -> None:
        from transformers import AutoTokenizer

        from retrieval.embed import default_cache_dir
        from retrieval.onnx_int8 import Int8Session
        from retrieval.precision import PrecisionError

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            self._int8 = Int8Session(self.path, self.cache_dir or default_cache_dir(), "reader")
        except PrecisionError as e:
            raise ReaderError(f"cannot load the reader from {self.path}: {e}") from None
        except Exception as e:  # tokenizers raise many kinds for a damaged file
            raise ReaderError(f"cannot load the reader from {self.path}: {first_line(e)}"
                              ) from None

    def _load_torch(self, device: str, want: str) -> None:
        import torch
        from sentence_transformers import CrossEncoder

        try:
            model = CrossEncoder(str(self.path), num_labels=1, max_length=self.max_length,
                                 device=device, local_files_only=True)
        except Exception as e:  # torch/safetensors raise many kinds for a damaged file
            raise ReaderError(f"cannot load the reader from {self.path}: "
                              f"{first_line(e)}"
                              ) from None
        model.model.float()
        if want in ("bf16", "fp16"):
            model.model.to(torch.bfloat16 if want == "bf16" else torch.float16)
        model.model.eval()
        self._tokenizer = model.tokenizer
        self._model = model

    def logits(self, question: str, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        self.load()
        if self._int8 is not None:
            enc = self._tokenizer([question] * len(texts), texts, truncation="longest_first",
                                  max_length=self.max_length, return_offsets_mapping=True)
            out = np.empty(len(texts), dtype=np.float32)
            hidden: list[np.ndarray | None] = [None] * len(texts)

            def one(i: int) -> None:
                logit, hidden[i] = self._int8.outputs(enc["input_ids"][i],
                                                      enc["token_type_ids"][i])[:2]
                out[i] = logit[0]

            self._int8.each(one, len(texts))
            if self.span_head is not None:
                for i, text in enumerate(texts):
                    self._keep((question, text), (hidden[i], enc["offset_mapping"][i],
                                                  enc.sequence_ids(i)))
            return out
        import torch

        with self._lock, torch.inference_mode():
            out = self._model.predict([(question, t) for t in texts], batch_size=32,
                                      activation_fn=torch.nn.Identity(), convert_to_numpy=True,
                                      show_progress_bar=False)
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def _keep(self, key: tuple[str, str], read: tuple[np.ndarray, list, list]) -> None:
        with self._lock:
            self._hidden[key] = read
            self._hidden.move_to_end(key)
            while len(self._hidden) > HIDDEN_KEPT:
                self._hidden.popitem(last=False)

    def probability(self, logit: float) -> float:
        a, _, c = self.stack[:3]
        return 1.0 / (1.0 + math.exp(-(a * logit + c)))

    def order_key(self, logit: float, relevance: float, recency: float) -> float:
        """What the re-read sentences are ordered by. The scorer's terms stay out of the
        probability: with recency in it, a fresh article's sentences all read as answers
        (measured: the floor then abstained on 6% of unanswerable questions, not ~50%)."""
        a, b, _, d = (*self.stack, 0.0)[:4]
        return a * logit + b * relevance + d * recency

    def rerank(self, question: str, ranked: list[Candidate],
               previous: dict[tuple[str, str, int], str]) -> list[Candidate]:
        """The top ``candidates`` of the heuristic ranking, re-scored by the reader: their
        ``score`` becomes the reader's probability, and ``order_key`` orders them; the rest
        follow, with score 0. ``relevance`` stays the scorer's: it decides abstention and
        which sentences may be cited, since the reader's probability separates stored answers
        from absent ones far worse (docs/reader.md)."""
        head, tail = ranked[: self.candidates], ranked[self.candidates:]
        keyed = []
        for c, logit in zip(head, self.logits(question, candidate_pairs(head, previous)),
                            strict=True):
            # The scorer's recency bonus is what its score adds to relevance.
            keyed.append((-self.order_key(float(logit), c.relevance, c.score - c.relevance),
                          c.passage_rank, c.index, c))
            c.score = self.probability(float(logit))
        head = [c for *_, c in sorted(keyed, key=lambda t: t[:3])]
        for c in tail:
            c.score = 0.0  # below every probability: re-read candidates come first
        return head + tail

    def short_answer(self, question: str, sentence: str, probability: float,
                     embed: Callable[[list[str]], np.ndarray] | None = None,
                     title: str = "", previous: str = "") -> Span | None:
        """The span of ``sentence`` that answers, when confident: from the span head where the
        reader has one (read with the same title and previous sentence as its score), else
        from the span model over names, numbers and dates."""
        if self.span_head is None:
            span = best_span(question, sentence, self.span_weights, probability, embed)
        else:
            span = self._head_span(question, sentence, title, previous)
        return span if span and span.confidence >= self.span_threshold else None

    def _head_span(self, question: str, sentence: str, title: str, previous: str
                   ) -> Span | None:
        self.load()
        pair = pair_text(sentence, title, previous)
        with self._lock:
            kept = self._hidden.get((question, pair))
        if kept is not None:
            hidden, offsets, seq_ids = kept
        else:
            hidden, offsets, seq_ids = self._read_hidden(question, pair)
        w, b = self.span_head
        se = hidden.astype(np.float32) @ w + b
        got = decode_span(se[:, 0], se[:, 1],
                          sentence_positions(len(sentence), offsets, seq_ids), offsets)
        if got is None:
            return None
        text, s = trim_span(sentence, got[0], got[1])
        p = got[2]
        # The sentence passed the reader's floor to be cited: the span's own probability is
        # what says whether it answers.
        return Span(text, s, s + len(text), p) if text else None

    def _read_hidden(self, question: str, pair: str) -> tuple[np.ndarray, list, list]:
        """The last hidden states of one pair, with its tokens' offsets and sequence ids."""
        enc = self._tokenizer(question, pair, truncation="longest_first",
                              max_length=self.max_length, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        if self._int8 is not None:
            hidden = self._int8.outputs(enc["input_ids"], enc["token_type_ids"])[1]
        else:
            import torch

            with self._lock, torch.inference_mode():
                feats = {k: torch.tensor([enc[k]], device=self._model.model.device)
                         for k in ("input_ids", "attention_mask", "token_type_ids")}
                out = self._model.model(**feats, output_hidden_states=True)
                hidden = out.hidden_states[-1][0].float().cpu().numpy()
        return hidden, offsets, enc.sequence_ids()


def load_reader(setting: str, device: str = "auto", precision: str = "auto",
                cache_dir: Path | None = None) -> Reader | None:
    """``NEWSBOT_READER``: empty = the shipped reader, ``none`` = the heuristic scorer only,
    anything else = a path to a reader directory. ``cache_dir``: where its int8 export goes."""
    if setting.strip().lower() == "none":
        return None
    path = Path(setting).expanduser() if setting.strip() else SHIPPED
    return Reader(path, device, precision=precision, cache_dir=cache_dir).load()
