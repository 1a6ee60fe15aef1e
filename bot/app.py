"""The Discord client: the commands synced to Discord, feed polling and standing questions
in the background. What the commands and buttons share with it lives in `bot.common`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import discord
from discord.ext import commands

from bot.commands import NewsCommands
from bot.common import BaseBot
from bot.present import NONE, check_message, cut, follow_embed
from newsbot.settings import Settings
from retrieval.feeds import poll_all
from retrieval.follow import check_follows
from retrieval.models import Follow, FollowHit
from retrieval.service import Newsbot

log = logging.getLogger("newsbot.bot")


class NewsBot(BaseBot):
    def __init__(self, core: Newsbot, settings: Settings, **options) -> None:
        super().__init__(core, settings, **options)
        self._poller: asyncio.Task | None = None
        self._follower: asyncio.Task | None = None
        self._follow_due = asyncio.Event()
        core.on_ingest.append(self._ingested)
        self.created = time.perf_counter()


    async def setup_hook(self) -> None:
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
                reports = await self.poll(poll_all, self.core, self.feeds)
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
                hits = await self.follow_work(check_follows, self.core, self.follows,
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
            if await self.follow_work(self.follows.pause, f.id, reason):
                await self._tell_owner(f, reason)
            return
        except discord.HTTPException as e:  # Discord's trouble, not the channel's: next time
            log.warning("could not post standing question %s: %s", f.id, e)
            return
        await self.follow_work(self.follows.record_post, hit)

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
        await super().close()  # then the pools and the stores (BaseBot.close)


class ShardedNewsBot(commands.AutoShardedBot, NewsBot):
    """NewsBot on discord.py's AutoShardedClient: Discord says how many shards, and each
    runs its own gateway connection (NEWSBOT_SHARDED=1, for bots in very many servers)."""


def make_bot(core: Newsbot, settings: Settings, **options) -> NewsBot:
    return (ShardedNewsBot if settings.sharded else NewsBot)(core, settings, **options)
