"""The embedding model (and a trained reader) in int8: exported to ONNX from the local
weights, quantised, cached.

Nothing is downloaded: the first use exports the packaged MiniLM (or NEWSBOT_EMBEDDING_MODEL)
with torch, quantises its matrix products to int8 per output channel with ONNX Runtime's
dynamic quantisation, and caches the file (~59 MB) under the model cache dir; later loads take
well under a second. Measured here (docs/precision.md): ~1.6x the sentences/s of
fp32 on an AVX2 CPU, median cosine 0.992 to the fp32 vectors. A reader (a cross-encoder) goes
the same way, its logits as output (docs/reader.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from retrieval.errors import first_line
from retrieval.precision import PrecisionError, usable_cpus

log = logging.getLogger("newsbot")
# Bump when the export or quantisation changes, so that old cached files are not reused.
EXPORT_VERSION = 2  # 2: the reader also outputs its last hidden states (span head)
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _weights(model_dir: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (model_dir / name).is_file():
            return model_dir / name
    raise PrecisionError(f"no weights (model.safetensors) in {model_dir} to export to int8")


def _sentence_config(model_dir: Path) -> tuple[int, bool]:
    """The model's max_seq_length, and whether it is mean-pooled then normalised: the only
    kind this path reproduces."""
    try:
        st = json.loads((model_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
        modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
        pooling_dir = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
        pooling = json.loads((model_dir / pooling_dir / "config.json").read_text(
            encoding="utf-8"))
    except (OSError, ValueError, KeyError, StopIteration) as e:
        raise PrecisionError(f"int8: {model_dir} is not a sentence-transformers model "
                             f"directory ({type(e).__name__})") from None
    normalised = any(m["type"].endswith("Normalize") for m in modules)
    mean = bool(pooling.get("pooling_mode_mean_tokens")) and not any(
        v for k, v in pooling.items()
        if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens" and v is True)
    return int(st.get("max_seq_length", 256)), mean and normalised


def supports(model: str) -> bool:
    """Whether ``model`` is a local, mean-pooled, normalised sentence-transformers model,
    which this path reproduces (``auto`` keeps fp32 for any other)."""
    try:
        return Path(model).is_dir() and _sentence_config(Path(model))[1]
    except PrecisionError:
        return False


KINDS = {"embedding": "embedding model", "reader": "reader"}


def cached_path(model_dir: Path, cache_dir: Path, kind: str = "embedding") -> Path:
    """Where the int8 file of this model lives: named by the weights' identity and the ONNX
    Runtime version, so a changed model or runtime gets a new export."""
    import onnxruntime

    w = _weights(model_dir)
    st = w.stat()
    key = f"{w.resolve()}:{st.st_size}:{st.st_mtime_ns}:{onnxruntime.__version__}:{EXPORT_VERSION}"
    return cache_dir / f"{kind}-int8-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"


def _not_onnxruntime(record: logging.LogRecord) -> bool:
    return "onnxruntime" not in record.pathname


@contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's tracer warnings and the quantiser's advice (logged on the root logger)
    mean nothing to a user: the result is checked against fp32 by the tests. Only records
    from ONNX Runtime are dropped: other threads (the bot's) keep logging meanwhile."""
    root = logging.getLogger()
    root.addFilter(_not_onnxruntime)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeFilter(_not_onnxruntime)


def export(model_dir: Path, target: Path, kind: str = "embedding") -> None:
    """Export the torch model to ONNX, quantise it to int8 and move it into place atomically
    (two processes exporting at once both finish; the second rename wins, same content).
    ``kind``: "embedding" outputs the last hidden states, "reader" (a cross-encoder) its
    logits and its last hidden states (which the reader's span head reads)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    log.info("preparing the int8 %s in %s (once, ~15 s)", KINDS[kind], target.parent)
    if sys.stderr.isatty() and not logging.getLogger().handlers:  # the CLI, in a terminal
        print(f"newsbot: preparing the int8 {KINDS[kind]} (once, ~15 s) ...", file=sys.stderr)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PrecisionError(f"int8: cannot write the model cache {target.parent} "
                             f"({e.strerror}); set NEWSBOT_MODEL_CACHE to a writable "
                             "directory") from None
    tmp = target.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{target.name}")
    plain = tmp.with_suffix(".fp32.onnx")
    try:
        # fp32 whatever the file holds (the reader ships fp16): quantisation starts from it.
        auto = AutoModelForSequenceClassification if kind == "reader" else AutoModel
        model = auto.from_pretrained(str(model_dir), local_files_only=True,
                                     dtype=torch.float32).eval()
        tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        sample = tok(["a short sentence", "and a second, longer one to pad"],
                     ["with a pair", "for the reader"] if kind == "reader" else None,
                     return_tensors="pt", padding=True)
        outputs = ["logits", "hidden"] if kind == "reader" else ["hidden"]

        class Output(torch.nn.Module):
            def __init__(self, net: torch.nn.Module) -> None:
                super().__init__()
                self.net = net

            def forward(self, input_ids, attention_mask, token_type_ids):
                if kind == "reader":
                    out = self.net(input_ids=input_ids, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids, output_hidden_states=True)
                    return out.logits, out.hidden_states[-1]
                return self.net(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state

        axes = {k: {0: "batch", 1: "tokens"} for k in _INPUTS}
        axes["hidden"] = {0: "batch", 1: "tokens"}
        if kind == "reader":
            axes["logits"] = {0: "batch"}
        with torch.inference_mode(), _quiet():
            torch.onnx.export(
                Output(model), tuple(sample[k] for k in _INPUTS), str(plain),
                input_names=list(_INPUTS), output_names=outputs, dynamic_axes=axes,
                opset_version=17, dynamo=False)
        # Matrix products only, per channel: quantising the embedding tables as well, or
        # per tensor, fell below the 0.99 median cosine to fp32 (docs/precision.md).
        with _quiet():
            quantize_dynamic(str(plain), str(tmp), weight_type=QuantType.QInt8,
                             per_channel=True, op_types_to_quantize=["MatMul"])
        os.replace(tmp, target)
    except PrecisionError:
        raise
    except Exception as e:  # torch/onnx raise many kinds; the caller shows one line
        raise PrecisionError(f"int8: exporting {model_dir.name} to ONNX failed: "
                             f"{first_line(e)}"
                             ) from None
    finally:
        for p in (tmp, plain):
            p.unlink(missing_ok=True)


class Int8Session:
    """An int8 ONNX model (exported on first use, re-exported once if the cached file is
    damaged), run one input at a time, one thread per core.

    One input per run: dynamic quantisation scales activations by the range of the whole
    input, so in a padded batch an input's output would depend on its neighbours (for the
    embedder, cosine ~0.988 to the same sentence alone, measured): a question's vector would
    change with the load. One input per call is deterministic, and here it was also faster
    than batches of 64 on two threads (no padding; small products parallelise badly)."""

    def __init__(self, model_dir: Path, cache_dir: Path, kind: str = "embedding") -> None:
        import onnxruntime as ort

        self.path = cached_path(model_dir, cache_dir, kind)
        if not self.path.is_file():
            export(model_dir, self.path, kind)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # the parallelism is across inputs (above)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        for attempt in range(2):
            try:
                self.session = ort.InferenceSession(str(self.path), options,
                                                    providers=["CPUExecutionProvider"])
                break
            except Exception as e:
                if attempt:
                    raise PrecisionError(f"int8: cannot load {self.path}: {first_line(e)}"
                                         ) from None
                # A truncated or damaged cache file: export again, once.
                self.path.unlink(missing_ok=True)
                export(model_dir, self.path, kind)
        self.workers = usable_cpus()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=f"int8-{kind}")

    def run(self, ids: list[int], type_ids: list[int] | None = None) -> np.ndarray:
        """The model's first output for one input (its batch axis dropped)."""
        return self.session.run(None, self._feeds(ids, type_ids))[0][0]

    def outputs(self, ids: list[int], type_ids: list[int] | None = None) -> list[np.ndarray]:
        """Every output of the model for one input (batch axes dropped)."""
        return [o[0] for o in self.session.run(None, self._feeds(ids, type_ids))]

    @staticmethod
    def _feeds(ids: list[int], type_ids: list[int] | None) -> dict[str, np.ndarray]:
        n = len(ids)
        return {"input_ids": np.asarray([ids], dtype=np.int64),
                "attention_mask": np.ones((1, n), dtype=np.int64),
                "token_type_ids": np.asarray([type_ids or [0] * n], dtype=np.int64)}

    def each(self, work: Callable[[int], None], n: int) -> None:
        """``work(i)`` for i in range(n), spread over one thread per core."""
        if n <= 1:
            for i in range(n):
                work(i)
            return

        def part(k: int) -> None:  # ONNX Runtime releases the GIL while it runs
            for i in range(k, n, self.workers):
                work(i)

        for f in [self._pool.submit(part, k) for k in range(self.workers)]:
            f.result()


class OnnxInt8Embeddings(Embeddings):
    """LangChain embeddings from the int8 ONNX model: mean pooling and unit length, as the
    sentence-transformers model does in fp32. Each sentence runs alone (``Int8Session``)."""

    def __init__(self, model_dir: str | Path, cache_dir: Path) -> None:
        from transformers import AutoTokenizer

        self.model_dir = Path(model_dir)
        self.max_length, supported = _sentence_config(self.model_dir)
        if not supported:
            raise PrecisionError(f"int8 reproduces mean-pooled, normalised models only; "
                                 f"{self.model_dir.name} is not one: use NEWSBOT_PRECISION=fp32")
        self.runner = Int8Session(self.model_dir, cache_dir)
        self.path = self.runner.path
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
        self.dim = int(self.runner.session.get_outputs()[0].shape[-1])

    def encode(self, texts: list[str]) -> np.ndarray:
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        out = np.empty((len(texts), self.dim), dtype=np.float32)

        def one(i: int) -> None:
            v = self.runner.run(ids[i]).mean(axis=0)
            out[i] = v / max(float(np.linalg.norm(v)), 1e-12)

        self.runner.each(one, len(texts))
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()
