"""Buttons under answers (passages, feedback) and the /sources pager."""

from __future__ import annotations

from collections.abc import Sequence

import discord

from bot.common import BaseBot, report_error
from bot.present import NONE, check_message, passage_embeds, sources_embed
from retrieval.models import Answer, StoredArticle


class AnswerView(discord.ui.View):
    def __init__(self, bot: BaseBot, answer: Answer, timeout: float = 3600) -> None:
        super().__init__(timeout=timeout)
        self.bot = bot
        self.answer = answer
        self.voted: set[int] = set()
        if answer.abstained and not answer.passages:
            self.remove_item(self.show_passages)

    async def on_error(self, interaction: discord.Interaction, error: Exception,
                       item: discord.ui.Item) -> None:
        await report_error(interaction, error)

    @discord.ui.button(label="Show passages", style=discord.ButtonStyle.secondary,
                       emoji="\U0001f4c4")
    async def show_passages(self, interaction: discord.Interaction,
                            button: discord.ui.Button) -> None:
        embeds = passage_embeds(self.answer)
        check_message(embeds)
        await interaction.response.send_message(embeds=embeds, ephemeral=True,
                                                allowed_mentions=NONE)

    async def _vote(self, interaction: discord.Interaction, vote: int) -> None:
        if interaction.user.id in self.voted:
            await interaction.response.send_message("You already rated this answer.",
                                                    ephemeral=True)
            return
        self.voted.add(interaction.user.id)
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.bot.read(self.bot.feedback.record, self.answer, vote,
                                interaction.user.id, interaction.guild_id)
        await interaction.followup.send("Thanks, your feedback was recorded.", ephemeral=True)

    @discord.ui.button(emoji="\U0001f44d", style=discord.ButtonStyle.secondary)
    async def thumbs_up(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await self._vote(interaction, 1)

    @discord.ui.button(emoji="\U0001f44e", style=discord.ButtonStyle.secondary)
    async def thumbs_down(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await self._vote(interaction, -1)


class SourcesView(discord.ui.View):
    PER_PAGE = 10

    def __init__(self, bot: BaseBot, rows: Sequence[StoredArticle], query: str,
                 owner_id: int) -> None:
        super().__init__(timeout=900)
        self.bot, self.rows, self.query, self.owner_id = bot, list(rows), query, owner_id
        self.page = 0
        self.pages = max(1, -(-len(self.rows) // self.PER_PAGE))
        self._sync_buttons()

    def embed(self) -> discord.Embed:
        start = self.page * self.PER_PAGE
        return sources_embed(self.rows[start : start + self.PER_PAGE], self.page, self.pages,
                             len(self.rows), self.query)

    def _sync_buttons(self) -> None:
        self.previous.disabled = self.page == 0
        self.next.disabled = self.page >= self.pages - 1

    async def on_error(self, interaction: discord.Interaction, error: Exception,
                       item: discord.ui.Item) -> None:
        await report_error(interaction, error)

    async def _turn(self, interaction: discord.Interaction, step: int) -> None:
        self.page = min(max(0, self.page + step), self.pages - 1)
        self._sync_buttons()
        await interaction.response.edit_message(embed=self.embed(), view=self)

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await self._turn(interaction, -1)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await self._turn(interaction, 1)


class PostPubliclyView(discord.ui.View):
    """Under an ephemeral check: one click posts the same embed in the channel, for all."""

    def __init__(self, bot: BaseBot, embed: discord.Embed, timeout: float = 900) -> None:
        super().__init__(timeout=timeout)
        self.bot = bot
        self.embed = embed

    async def on_error(self, interaction: discord.Interaction, error: Exception,
                       item: discord.ui.Item) -> None:
        await report_error(interaction, error)

    @discord.ui.button(label="Post publicly", style=discord.ButtonStyle.primary,
                       emoji="\U0001f4e2")
    async def post(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        button.disabled = True
        self.stop()
        await interaction.response.send_message(embed=self.embed, allowed_mentions=NONE)
