"""Which numeric precision the embedding model runs in (``NEWSBOT_PRECISION``).

Chosen by measurement (docs/precision.md): int8 through ONNX Runtime encoded fastest on every
CPU measured (AVX2-only EPYC, Zen 4 with avx512_bf16/VNNI, Sapphire Rapids with AMX), at
calibrated answer quality, so ``auto`` takes it on any CPU; on CUDA, half precision was slower
than fp32 for this 6-layer model, so ``auto`` keeps fp32 there. bf16 is not offered for the
embedder: it never beat int8 and its vectors depend on the batch they were encoded with. The
reader may still run in bf16 where the CPU has it natively (``READER_PRECISIONS``).
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache
from pathlib import Path

from retrieval.errors import NewsbotError

PRECISIONS = ("auto", "fp32", "int8")  # the embedder's (NEWSBOT_PRECISION)
READER_PRECISIONS = ("auto", "fp32", "bf16", "int8")


class PrecisionError(NewsbotError):
    """A precision this machine (or this model) can't run."""


def usable_cpus() -> int:
    """Cores this process may run on (its affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@cache
def _cpu_flags() -> str:
    """/proc/cpuinfo's text ("" where there is none: not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_bf16() -> bool:
    """True where the CPU computes bf16 natively (AMX or avx512_bf16); elsewhere bf16 is
    emulated and slower than fp32."""
    flags = _cpu_flags()
    return " amx_bf16" in flags or " avx512_bf16" in flags


def int8_available() -> bool:
    """int8 needs ONNX Runtime (a chromadb dependency) and the onnx package (to quantise)."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def resolve(setting: str, device: str, name: str = "NEWSBOT_PRECISION",
            allowed: tuple[str, ...] = PRECISIONS) -> str:
    """The precision to run, or a one-line PrecisionError when the machine lacks it.
    ``device`` is already resolved (cpu, cuda, mps); ``name`` is the setting, for messages
    (the reader's NEWSBOT_READER_PRECISION resolves the same way, with bf16 allowed)."""
    if setting not in allowed:
        why = (": bf16 encoded slower than int8 on every CPU measured (docs/precision.md)"
               if setting == "bf16" else "")
        raise PrecisionError(f"{name}={setting} is not a precision here{why}; use one of "
                             f"{', '.join(allowed)}")
    gpu = device != "cpu"
    if setting == "auto":
        if gpu:
            return "fp32"
        return "int8" if int8_available() else "fp32"
    if setting == "bf16" and not gpu and not cpu_bf16():
        raise PrecisionError(f"{name}=bf16: this CPU has no native bf16 (AMX or "
                             "avx512_bf16); use auto, fp32 or int8")
    if setting == "int8" and gpu:
        raise PrecisionError(f"{name}=int8 runs on the CPU, not {device}; use auto or "
                             "fp32, or NEWSBOT_DEVICE=cpu")
    if setting == "int8" and not int8_available():
        raise PrecisionError(f"{name}=int8 needs the onnx and onnxruntime packages "
                             "(pip install onnx onnxruntime); use auto or fp32")
    return setting
