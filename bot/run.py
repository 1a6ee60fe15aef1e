"""`newsbot run`: load the model, then bring the bot online."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from newsbot.settings import Settings
from retrieval.errors import NewsbotError

log = logging.getLogger("newsbot.bot")


class RedactSecrets(logging.Filter):
    """Belt and braces: whatever a library logs, the token never reaches the log."""

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def _redact(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            record.msg, record.args = self._redact(message), None
        # Tracebacks too: an exception's message or a frame's source line can hold the token.
        # The formatter uses exc_text when it is set, so the redacted copy is what is printed.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


def point_at(api_base: str, gateway_url: str) -> None:
    """Send REST and the gateway elsewhere (a proxy, or the tests' fake Discord)."""
    import discord
    import yarl

    if api_base:
        discord.http.Route.BASE = api_base.rstrip("/")
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def token_of(settings: Settings) -> str:
    token = settings.discord_token.get_secret_value().strip() if settings.discord_token else ""
    if not token:
        raise NewsbotError("DISCORD_TOKEN is not set: put the bot token in .env or the "
                           "environment (see .env.example)")
    return token


def setup_logging(token: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(token))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "chromadb", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def serve(settings: Settings, token: str) -> None:
    import discord

    from bot.app import make_bot
    from retrieval.service import Newsbot

    started = time.perf_counter()
    core = Newsbot(settings)
    await asyncio.to_thread(core.warm)  # the model loads once, before the bot goes online
    log.info("model and store ready in %.1f s (%s articles)", time.perf_counter() - started,
             core.catalog.counts()["articles"])
    point_at(settings.discord_api_base, settings.discord_gateway_url)
    bot = make_bot(core, settings)
    bot.created = started
    try:
        async with bot:
            await bot.start(token)
    except discord.LoginFailure:
        raise NewsbotError("Discord rejected DISCORD_TOKEN (401 Unauthorized): check the "
                           "token in .env") from None
    except discord.PrivilegedIntentsRequired:
        raise NewsbotError("Discord refused the connection: an intent is not enabled for "
                           "this application") from None
    finally:
        core.close()


def run(settings: Settings) -> int:
    token = token_of(settings)
    setup_logging(token)
    try:
        asyncio.run(serve(settings, token))
    except KeyboardInterrupt:
        log.info("stopped")
    return 0
