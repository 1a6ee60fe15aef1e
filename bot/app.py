"""The Discord client: wires the core, the commands and error replies together."""

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
from bot.present import NONE, check_message, cut, follow_embed
from newsbot.settings import Settings
from retrieval.errors import NewsbotError
from retrieval.feeds import FeedStore, poll_all
from retrieval.follow import FollowStore, check_follows
from retrieval.models import Follow, FollowHit
from retrieval.service import Newsbot

log = logging.getLogger("newsbot.bot")
T = TypeVar("T")
CLOSE_WAIT_S = 30.0  # the longest close() waits for work in flight (fetches have deadlines)
# Writes (ingests, removals) queued across all servers at once; more are told to come back.
MAX_QUEUED_WRITES = 8


class NotAdmin(app_commands.CheckFailure):
    pass


class NewsBot(commands.Bot):
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
        self._poller: asyncio.Task | None = None
        self._follower: asyncio.Task | None = None
        self._follow_due = asyncio.Event()
        core.on_ingest.append(self._ingested)
        self._mentioned: dict[int, float] = {}
        self.answer_ms: deque[float] = deque(maxlen=10_000)
        self.created = time.perf_counter()
        self.tree.on_error = self.report_error
        # Separate pools, so that no write can occupy the threads that answer questions: reads
        # (questions, /sources, /article), fetches (pages and uploads, parsed before any lock),
        # one writer, which takes the store's write lock in turn, and one feed poller.
        self._reads = ThreadPoolExecutor(4, thread_name_prefix="newsbot-read")
        self._fetches = ThreadPoolExecutor(4, thread_name_prefix="newsbot-fetch")
        self._writes = ThreadPoolExecutor(1, thread_name_prefix="newsbot-write")
        self._polls = ThreadPoolExecutor(1, thread_name_prefix="newsbot-feeds")
        self._writing: set[int | None] = set()  # guilds with a write queued or running
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
        return await self._run(self._fetches, fn, *args, **kwargs)

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._run(self._writes, fn, *args, **kwargs)

    @contextlib.asynccontextmanager
    async def write_slot(self, guild_id: int | None) -> AsyncIterator[None]:
        """At most one write per server in flight, and a bounded queue across servers: past
        either, a clear "busy" instead of a wait that would outlast the interaction."""
        if guild_id in self._writing:
            raise NewsbotError("This server already has an ingest or removal running; try "
                               "again when it has finished.")
        if len(self._writing) >= MAX_QUEUED_WRITES:
            raise NewsbotError("The bot is busy with other servers' ingests; try again in a "
                               "minute.")
        self._writing.add(guild_id)
        try:
            yield
        finally:
            self._writing.discard(guild_id)

    async def setup_hook(self) -> None:
        from bot.commands import NewsCommands

        await self.add_cog(NewsCommands(self))
        if self.settings.guild_ids:
            for gid in self.settings.guild_ids:
                guild = discord.Object(gid)
                self.tree.copy_global_to(guild=guild)  # else the guild gets an empty list
                synced = await self.tree.sync(guild=guild)
                log.info("synced %d commands to guild %s", len(synced), gid)
        else:
            synced = await self.tree.sync()
            log.info("synced %d commands globally (Discord may take a while to show them)",
                     len(synced))

    async def poll_feeds(self) -> None:
        """Every NEWSBOT_FEED_INTERVAL_S, poll each feed in a worker thread. The feeds' state
        is on disk, so after a restart polling resumes where it left off."""
        while True:
            try:
                reports = await self._run(self._polls, poll_all, self.core, self.feeds)
                for r in reports:
                    log.info("feed %s", r.summary())
            except Exception:
                log.exception("feed polling failed; trying again next round")
            await asyncio.sleep(self.settings.feed_interval_s)

    def _ingested(self, library: str) -> None:
        """From the thread that ingested: check the standing questions now."""
        with contextlib.suppress(RuntimeError, AttributeError):  # loop closed or not started
            self.loop.call_soon_threadsafe(self._follow_due.set)

    async def watch_follows(self) -> None:
        """Check the standing questions after each of this bot's ingests, and every
        NEWSBOT_FOLLOW_SCAN_S for articles another process stored (a CLI ingest)."""
        every = self.settings.follow_scan_s or None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._follow_due.wait(), every)
            self._follow_due.clear()
            try:
                hits = await self._run(self._polls, check_follows, self.core, self.follows,
                                       "discord")
                for hit in hits:
                    await self.post_follow(hit)
            except Exception:
                log.exception("checking the standing questions failed; trying again later")

    async def post_follow(self, hit: FollowHit) -> None:
        f = hit.follow
        embed = follow_embed(hit)
        check_message([embed])
        try:
            await self.get_partial_messageable(int(f.channel)).send(embed=embed,
                                                                    allowed_mentions=NONE)
        except (discord.Forbidden, discord.NotFound) as e:
            log.info("standing question %s paused: channel %s refused (%s)", f.id, f.channel,
                     e.status)
            reason = "the bot can no longer post in its channel"
            if await self._run(self._polls, self.follows.pause, f.id, reason):
                await self._tell_owner(f, reason)
            return
        except discord.HTTPException as e:  # Discord's trouble, not the channel's: next time
            log.warning("could not post standing question %s: %s", f.id, e)
            return
        await self._run(self._polls, self.follows.record_post, hit)

    async def _tell_owner(self, f: Follow, reason: str) -> None:
        """Tell whoever added a paused question, once, in a direct message if they accept one."""
        try:
            dm = await self.create_dm(discord.Object(int(f.added_by)))
            await dm.send(
                f"Your standing question #{f.id} is paused: {reason} (<#{f.channel}>). Give "
                f"the bot permission to post there, then `/follow add` the same question "
                f"again to resume it:\n> {cut(f.question, 1500)}", allowed_mentions=NONE)
        except (discord.HTTPException, ValueError) as e:
            log.info("could not tell user %s that question %s is paused: %s", f.added_by, f.id,
                     e)

    async def on_message(self, message: discord.Message) -> None:
        """No prefix commands: a mention is a follow-up question (see the cog's listener),
        never a command to parse."""

    async def on_ready(self) -> None:
        if self.settings.feed_interval_s and self._poller is None:
            self._poller = asyncio.create_task(self.poll_feeds(), name="newsbot-feeds")
        if self._follower is None:
            self._follower = asyncio.create_task(self.watch_follows(), name="newsbot-follows")
        log.info("ready as %s in %d guilds; startup took %.1f s", self.user, len(self.guilds),
                 time.perf_counter() - self.created)

    async def close(self) -> None:
        for task in (self._poller, self._follower):
            if task:
                task.cancel()
        with contextlib.suppress(ValueError):
            self.core.on_ingest.remove(self._ingested)
        await super().close()
        for pool in (self._reads, self._fetches, self._writes, self._polls):
            pool.shutdown(wait=False, cancel_futures=True)
        # A feed poll or a write still running would otherwise meet a closed database.
        if self._running:
            await asyncio.to_thread(wait, list(self._running), CLOSE_WAIT_S)
        self.feedback.close()
        self.conversations.close()
        self.feeds.close()
        self.follows.close()

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

    async def report_error(self, interaction: discord.Interaction,
                           error: Exception) -> None:
        """Errors go back as ephemeral messages; unexpected ones with a reference id that
        leads to the full error in the log. Users never see a traceback."""
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


class ShardedNewsBot(commands.AutoShardedBot, NewsBot):
    """NewsBot on discord.py's AutoShardedClient: Discord says how many shards, and each
    runs its own gateway connection (NEWSBOT_SHARDED=1, for bots in very many servers)."""


def make_bot(core: Newsbot, settings: Settings, **options) -> NewsBot:
    return (ShardedNewsBot if settings.sharded else NewsBot)(core, settings, **options)
