"""The optional chat model (a LangChain chat model chosen in settings), called with a hard
deadline and a cap on the reply's size. Every failure becomes an LLMError with a short reason,
so that the caller can fall back to the extractive answer; nothing here retries, since a retry
could outlast the deadline."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from retrieval.errors import NewsbotError

if TYPE_CHECKING:
    from newsbot.settings import Settings

OnText = Callable[[str], None]
MAX_REPLY_CHARS = 4000
_DONE = object()
# Calls run as tasks of one event loop on a daemon thread: at the deadline the task is
# cancelled, which closes its HTTP request, and a stuck read can never keep the process alive.
_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _llm_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, daemon=True, name="newsbot-llm").start()
            _loop = loop
        return _loop


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


def complete(model: Any, messages: list, timeout_s: float, on_text: OnText | None = None,
             max_chars: int = MAX_REPLY_CHARS) -> str:
    """The model's whole reply within ``timeout_s`` and ``max_chars``; with ``on_text`` it is
    streamed and each growing prefix is passed on as it arrives (on the calling thread). Past
    either limit the request is cancelled."""
    deadline = time.monotonic() + timeout_s
    pieces: queue.Queue = queue.Queue()

    async def run() -> None:
        try:
            if on_text is None:
                pieces.put(_text((await model.ainvoke(messages)).content))
            else:
                async for chunk in model.astream(messages):
                    pieces.put(_text(chunk.content))
            pieces.put(_DONE)
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # handed to the caller, which owns the deadline
            pieces.put(e)

    future = asyncio.run_coroutine_threadsafe(run(), _llm_loop())
    parts: list[str] = []
    size = 0
    try:
        while True:
            try:
                item = pieces.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise LLMError("timed out") from None
            if item is _DONE:
                break
            if isinstance(item, LLMError):
                raise item
            if isinstance(item, BaseException):
                raise LLMError(_reason(item)) from None
            parts.append(item)
            size += len(item)
            if size > max_chars:
                raise LLMError(f"the reply was over {max_chars:,} characters")
            if on_text is not None:
                try:
                    on_text("".join(parts))
                except Exception as e:  # a failing listener means no LLM answer, not a crash
                    raise LLMError(_reason(e)) from None
            if time.monotonic() > deadline:
                raise LLMError("timed out")
    finally:
        future.cancel()  # a request still running is closed; a finished one is unaffected
    text = "".join(parts)
    if not text.strip():
        raise LLMError("empty reply")
    return text
