"""A local stand-in for an LLM server on 127.0.0.1: OpenAI's /v1/chat/completions (plain and
streamed as server-sent events) and Ollama's /api/chat (NDJSON). It plays scripted replies, so
the real langchain-openai and langchain-ollama clients are exercised end to end."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.http_stub import LocalServer, QuietHandler


def evidence_number(prompt: str, needle: str) -> int:
    """The [n] of the first evidence line in the prompt that contains ``needle``."""
    for line in prompt.splitlines():
        if line.startswith("[") and needle in line:
            return int(line[1:line.index("]")])
    raise AssertionError(f"no evidence line holds {needle!r}")


@dataclass
class Reply:
    # The reply's text, or a function of the prompt's last message that makes it, so a script
    # can cite "the evidence line that holds X" without knowing the ranking.
    text: str | Callable[[str], str] = ""
    status: int = 200
    delay_s: float = 0.0  # before the first byte
    chunk_delay_s: float = 0.0  # between streamed pieces
    invalid: bool = False  # a 200 whose body is not a completion


class LLMStub(LocalServer):
    def __init__(self) -> None:
        self.script: list[Reply] = []  # consumed one per request; `default` when empty
        self.default = Reply("NOT_FOUND")
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                stub.requests.append({"path": self.path, "body": body,
                                      "auth": self.headers.get("Authorization", ""),
                                      "at": time.monotonic()})
                reply = stub.script.pop(0) if stub.script else stub.default
                if callable(reply.text):
                    msgs = body.get("messages") or [{}]
                    reply = Reply(**{**reply.__dict__, "text": reply.text(
                        str(msgs[-1].get("content", "")))})
                time.sleep(reply.delay_s)
                if reply.status != 200:
                    self._send(reply.status, {"error": {"message": "scripted failure",
                                                        "type": "server_error"}})
                elif reply.invalid:
                    self._send(200, {"unexpected": "shape"}, raw=b"<html>not json</html>")
                elif self.path.endswith("/chat/completions"):
                    self._openai(body, reply)
                elif self.path == "/api/chat":
                    self._ollama(body, reply)
                else:
                    self._send(404, {"error": "no such route"})

            def _send(self, status: int, data: Any, raw: bytes | None = None) -> None:
                payload = raw if raw is not None else json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                # The client may have given up (a timeout test).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            def _pieces(self, text: str) -> list[str]:
                words = text.split(" ")
                return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]

            def _stream(self, content_type: str, lines: list[bytes], delay: float) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    for line in lines:
                        self.wfile.write(line)
                        self.wfile.flush()
                        time.sleep(delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def _openai(self, body: dict[str, Any], reply: Reply) -> None:
                base = {"id": "chatcmpl-stub", "created": int(time.time()),
                        "model": body.get("model", "stub")}
                if not body.get("stream"):
                    self._send(200, {**base, "object": "chat.completion", "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": reply.text},
                         "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                  "total_tokens": 2}})
                    return

                def event(delta: dict[str, Any], finish: str | None) -> bytes:
                    chunk = {**base, "object": "chat.completion.chunk", "choices": [
                        {"index": 0, "delta": delta, "finish_reason": finish}]}
                    return f"data: {json.dumps(chunk)}\n\n".encode()

                lines = [event({"role": "assistant", "content": ""}, None)]
                lines += [event({"content": p}, None) for p in self._pieces(reply.text)]
                lines += [event({}, "stop"), b"data: [DONE]\n\n"]
                self._stream("text/event-stream", lines, reply.chunk_delay_s)

            def _ollama(self, body: dict[str, Any], reply: Reply) -> None:
                def line(content: str, done: bool) -> bytes:
                    msg = {"model": body.get("model", "stub"), "created_at":
                           "2026-01-01T00:00:00Z", "message": {"role": "assistant",
                                                               "content": content},
                           "done": done}
                    if done:
                        msg.update(done_reason="stop", total_duration=1, eval_count=1,
                                   prompt_eval_count=1)
                    return (json.dumps(msg) + "\n").encode()

                lines = [line(p, False) for p in self._pieces(reply.text)] + [line("", True)]
                self._stream("application/x-ndjson", lines, reply.chunk_delay_s)

        self._serve(Handler)


    def play(self, *replies: Reply) -> None:
        self.script = list(replies)
