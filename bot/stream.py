"""Streams a growing answer into the deferred reply, editing it at most once per second
(Discord rate-limits edits, and a reader can't follow faster)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import discord

from bot.present import CONTENT_MAX, NONE, cut, escape

TYPING = " \u2026"


class Streamer:
    def __init__(self, interaction: discord.Interaction, interval_s: float = 1.0) -> None:
        self.interaction = interaction
        self.interval_s = interval_s
        self.loop = asyncio.get_running_loop()
        self.latest = ""
        self.shown = ""
        self.last_edit = 0.0
        self.closing = False
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    def push(self, text: str) -> None:
        """From any thread: the answer so far (only verified sentences reach here)."""
        self.loop.call_soon_threadsafe(self._set, text)

    def _set(self, text: str) -> None:
        self.latest = text
        self.changed.set()

    async def _pace(self) -> None:
        wait = self.last_edit + self.interval_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _run(self) -> None:
        while True:
            await self.changed.wait()
            if self.closing:
                return
            await self._pace()
            self.changed.clear()
            if self.closing:
                return
            text = self.latest
            if text and text != self.shown:
                content = cut(escape(text, markers=True), CONTENT_MAX - len(TYPING)) + TYPING
                with contextlib.suppress(discord.HTTPException):
                    await self.interaction.edit_original_response(content=content,
                                                                  allowed_mentions=NONE)
                self.shown = text
                self.last_edit = time.monotonic()

    async def stop(self) -> None:
        self.closing = True
        self.changed.set()
        await self.task

    async def finish(self, **final: object) -> discord.InteractionMessage:
        """Stop streaming and put the final answer in place, still no sooner than a second
        after the previous edit."""
        await self.stop()
        await self._pace()
        return await self.interaction.edit_original_response(**final)
