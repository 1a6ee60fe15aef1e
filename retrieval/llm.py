"""The optional chat model (a LangChain chat model chosen in settings), called with a hard
deadline. Every failure becomes an LLMError with a short reason, so that the caller can fall
back to the extractive answer; nothing here retries, since a retry could outlast the deadline."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from retrieval.errors import NewsbotError

if TYPE_CHECKING:
    from newsbot.settings import Settings

OnText = Callable[[str], None]
# Calls run here so that a reply that dribbles in past the deadline can be abandoned.
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="newsbot-llm")


class LLMError(NewsbotError):
    """The LLM gave no usable reply; ``reason`` is short and never holds a secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def make_chat_model(settings: Settings) -> Any:
    """The configured LangChain chat model, or None for extractive answers only."""
    s = settings
    if s.llm_provider == "openai":
        from langchain_openai import ChatOpenAI

        key = s.llm_api_key.get_secret_value() if s.llm_api_key else "unused"
        return ChatOpenAI(model=s.llm_model, base_url=s.llm_base_url or None, api_key=key,
                          timeout=s.llm_timeout_s, max_retries=0, max_tokens=s.llm_max_tokens,
                          temperature=0)
    if s.llm_provider == "ollama":
        from langchain_ollama import ChatOllama

        return ChatOllama(model=s.llm_model, base_url=s.llm_base_url or None,
                          num_predict=s.llm_max_tokens, temperature=0,
                          client_kwargs={"timeout": s.llm_timeout_s})
    return None


def _reason(e: BaseException) -> str:
    """A short reason for a failed call, from the exception's type and status only: provider
    messages can echo request details, and the API key must never reach a log or a user."""
    status = getattr(e, "status_code", None) or getattr(getattr(e, "response", None),
                                                       "status_code", None)
    name = type(e).__name__
    if status == 429:
        return "rate limited (429)"
    if isinstance(status, int) and status >= 500:
        return f"server error ({status})"
    if isinstance(status, int) and status >= 400:
        return f"HTTP {status}"
    if "Timeout" in name:
        return "timed out"
    if "Connection" in name or isinstance(e, ConnectionError | OSError):
        return "could not connect"
    return f"invalid reply ({name})"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content
                       if isinstance(b, str | dict))
    raise LLMError("invalid reply (no text)")


def complete(model: Any, messages: list, timeout_s: float, on_text: OnText | None = None) -> str:
    """The model's whole reply within ``timeout_s``; with ``on_text`` it is streamed and each
    growing prefix is passed on as it arrives."""
    stop = threading.Event()

    def run() -> str:
        if on_text is None:
            return _text(model.invoke(messages).content)
        parts: list[str] = []
        for chunk in model.stream(messages):
            if stop.is_set():
                break
            parts.append(_text(chunk.content))
            on_text("".join(parts))
        return "".join(parts)

    future = _pool.submit(run)
    try:
        text = future.result(timeout=timeout_s)
    except FutureTimeout:
        stop.set()
        raise LLMError("timed out") from None
    except LLMError:
        raise
    except Exception as e:
        raise LLMError(_reason(e)) from None
    if not text.strip():
        raise LLMError("empty reply")
    return text
