"""What the slash commands and the buttons share with the client: the stores, the worker
pools (nothing slow on the event loop), the write queue, the mention cooldown, answer
latencies and error replies. The client in `bot.app` builds on this; `bot.commands` and
`bot.views` import only this, so imports point one way: run -> app -> commands/views -> here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.conversations import Conversations
from bot.feedback import FeedbackStore
from bot.present import NONE, cut
from newsbot.settings import Settings
from retrieval.errors import NewsbotError
from retrieval.feeds import FeedStore
from retrieval.follow import FollowStore
from retrieval.service import Newsbot

log = logging.getLogger("newsbot.bot")
T = TypeVar("T")
CLOSE_WAIT_S = 30.0  # the longest close() waits for work in flight (fetches have deadlines)
# Writes (ingests, removals) queued across all servers at once; more are told to come back.
MAX_QUEUED_WRITES = 8
# Web fetches (/ingest url:) in flight across all servers: one per server, this many in all.
MAX_QUEUED_FETCHES = 8


class NotAdmin(app_commands.CheckFailure):
    pass


async def report_error(interaction: discord.Interaction, error: Exception) -> None:
    """Errors go back as ephemeral messages; unexpected ones with a reference id that leads
    to the full error in the log. Users never see a traceback."""
    original = getattr(error, "original", error)
    if isinstance(error, app_commands.CommandOnCooldown):
        message = f"Slow down: you can ask again in {error.retry_after:.0f} s."
    elif isinstance(error, NotAdmin):
        message = str(error)
    elif isinstance(error, app_commands.NoPrivateMessage):
        message = "This command works only in a server."
    elif isinstance(original, NewsbotError):
        message = str(original)
    else:
        ref = secrets.token_hex(3)
        command = interaction.command.name if interaction.command else "component"
        log.error("error %s in %s", ref, command, exc_info=original)
        message = (f"Something went wrong on our side (reference `{ref}`). The bot's "
                   "operator can find the details in its log under that reference.")
    message = cut(message, 2000)  # Discord's limit: past it the user would get nothing
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(message, ephemeral=True)
            return
        # A public "thinking..." placeholder would otherwise stay forever.
        with contextlib.suppress(discord.HTTPException):
            await interaction.delete_original_response()
        await interaction.followup.send(message, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not deliver an error message for interaction %s", interaction.id)


class BaseBot(commands.Bot):
    """The discord.py client with newsbot's stores and pools; `bot.app.NewsBot` adds the
    command sync and the background work (feed polling, standing questions)."""

    def __init__(self, core: Newsbot, settings: Settings, **options) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),  # slash commands need no privileged intent
            allowed_mentions=NONE,  # never ping anyone or any role
            help_command=None,
            **options,
        )
        self.core = core
        self.settings = settings
        self.feedback = FeedbackStore(core.data_dir / "feedback.sqlite3")
        self.conversations = Conversations(core.data_dir / "conversations.sqlite3")
        self.feeds = FeedStore(core.data_dir / "feeds.sqlite3")
        self.follows = FollowStore(core.data_dir / "follows.sqlite3")
        self._mentioned: dict[int, float] = {}
        self.answer_ms: deque[float] = deque(maxlen=10_000)
        self.tree.on_error = report_error
        # Separate pools, so that no write can occupy the threads that answer questions, and no
        # slow web host the threads of anything else: reads (questions, /sources, /article),
        # web fetches (pages, parsed before any lock), uploads' parsing, one writer, which
        # takes the store's write lock in turn, one feed poller and the standing questions.
        self._reads = ThreadPoolExecutor(4, thread_name_prefix="newsbot-read")
        self._fetches = ThreadPoolExecutor(4, thread_name_prefix="newsbot-fetch")
        self._parses = ThreadPoolExecutor(2, thread_name_prefix="newsbot-parse")
        self._writes = ThreadPoolExecutor(1, thread_name_prefix="newsbot-write")
        self._polls = ThreadPoolExecutor(1, thread_name_prefix="newsbot-feeds")
        self._follows = ThreadPoolExecutor(1, thread_name_prefix="newsbot-follows")
        self._writing: set[int | None] = set()  # guilds with a write queued or running
        self._fetching: set[int | None] = set()  # guilds with a web fetch in flight
        # Work handed to the pools and not finished. Cancelling the coroutine that awaits it
        # does not stop a thread, so close() waits for these before closing the stores.
        self._running: set[Future] = set()

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any,
                   **kwargs: Any) -> T:
        job = pool.submit(functools.partial(fn, *args, **kwargs))
        self._running.add(job)
        job.add_done_callback(self._running.discard)
        return await asyncio.wrap_future(job)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a read (embedding, search, catalog) off the event loop, on the readers' pool."""
        return await self._run(self._reads, fn, *args, **kwargs)

    async def fetch(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A web fetch: it may wait on a slow host up to NEWSBOT_FETCH_TIMEOUT_S."""
        return await self._run(self._fetches, fn, *args, **kwargs)

    async def parse(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Parsing an upload: never queued behind web fetches."""
        return await self._run(self._parses, fn, *args, **kwargs)

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._run(self._writes, fn, *args, **kwargs)

    async def poll(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Feed polls, on their own thread."""
        return await self._run(self._polls, fn, *args, **kwargs)

    async def follow_work(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Standing questions, on their own thread: a slow feed never holds them up."""
        return await self._run(self._follows, fn, *args, **kwargs)

    def write_slot(self, guild_id: int | None) -> contextlib.AbstractAsyncContextManager[None]:
        """At most one write per server in flight, and a bounded queue across servers: past
        either, a clear "busy" instead of a wait that would outlast the interaction."""
        return _slot(self._writing, guild_id, MAX_QUEUED_WRITES,
                     "This server already has an ingest or removal running; try again when "
                     "it has finished.",
                     "The bot is busy with other servers' ingests; try again in a minute.")

    def fetch_slot(self, guild_id: int | None) -> contextlib.AbstractAsyncContextManager[None]:
        """At most one web fetch per server in flight (it holds no write slot while it
        waits on the host), and a bounded number across servers."""
        return _slot(self._fetching, guild_id, MAX_QUEUED_FETCHES,
                     "This server already has a page being fetched; try again when it has "
                     "finished.",
                     "The bot is busy fetching other servers' pages; try again in a minute.")

    def cooldown_left(self, user_id: int) -> float:
        """Seconds until the user may search again (/ask, a claim check, a follow-up by
        mention: one cooldown for all), or 0, which also starts their next cooldown."""
        every = self.settings.cooldown_s
        now, last = time.monotonic(), self._mentioned.get(user_id)
        if every <= 0:
            return 0.0
        if last is not None and now - last < every:
            return every - (now - last)
        if len(self._mentioned) > 10_000:  # forget those whose cooldown is long over
            self._mentioned = {u: t for u, t in self._mentioned.items() if now - t < every}
        self._mentioned[user_id] = now
        return 0.0

    def mention_cooldown(self, user_id: int) -> bool:
        """The /ask cooldown, for follow-ups asked by mention: True when the user may ask."""
        return self.cooldown_left(user_id) <= 0

    def latency_summary(self) -> str:
        xs = sorted(self.answer_ms)
        if not xs:
            return "no answers yet"
        p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
        return f"p50 {statistics.median(xs):.0f} ms, p95 {p95:.0f} ms over {len(xs)} answers"

    async def close(self) -> None:
        await super().close()
        for pool in (self._reads, self._fetches, self._parses, self._writes, self._polls,
                     self._follows):
            pool.shutdown(wait=False, cancel_futures=True)
        # A feed poll or a write still running would otherwise meet a closed database.
        if self._running:
            await asyncio.to_thread(wait, list(self._running), CLOSE_WAIT_S)
        self.feedback.close()
        self.conversations.close()
        self.feeds.close()
        self.follows.close()


@contextlib.asynccontextmanager
async def _slot(held: set[int | None], guild_id: int | None, limit: int, mine: str,
                everyone: str) -> AsyncIterator[None]:
    """One of ``held``'s slots for this server while the block runs; ``mine`` when the server
    has one already, ``everyone`` when all ``limit`` are taken."""
    if guild_id in held:
        raise NewsbotError(mine)
    if len(held) >= limit:
        raise NewsbotError(everyone)
    held.add(guild_id)
    try:
        yield
    finally:
        held.discard(guild_id)
