"""Slash commands. They translate Discord to the core and back; no retrieval logic lives here.
Everything that embeds, searches or touches the disk runs in a worker thread, so the event loop
stays free to acknowledge every interaction within Discord's 3 seconds."""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import tempfile
import time
from pathlib import Path

import discord
from discord import app_commands
from discord.ext import commands

from bot.common import BaseBot, NotAdmin
from bot.present import (
    NONE,
    answer_embed,
    article_embed,
    check_embed,
    check_message,
    code,
    cut,
    escape,
)
from bot.stream import Streamer
from bot.views import AnswerView, PostPubliclyView, SourcesView
from retrieval.check import check_text, checkable
from retrieval.errors import NewsbotError, QuestionError
from retrieval.fetch import FetchError, validate_url
from retrieval.follow import add_follow
from retrieval.followup import Turn
from retrieval.ingest import SUPPORTED, iter_articles, slug
from retrieval.libraries import guild_library, visible_libraries
from retrieval.models import Answer
from retrieval.service import check_date

log = logging.getLogger("newsbot.bot")
UPLOAD_SUFFIXES = {".txt", ".md", ".html", ".htm", ".json", ".jsonl"}
TEXT_TYPES = ("text/", "application/json", "application/x-ndjson", "application/jsonl",
              "application/xhtml+xml")


def _cooldown(interaction: discord.Interaction) -> bool:
    """One cooldown per user for everything that searches: /ask, "Check against the news"
    and follow-ups by mention share it."""
    bot = interaction.client
    left = bot.cooldown_left(interaction.user.id)
    if left > 0:
        raise app_commands.CommandOnCooldown(app_commands.Cooldown(1, bot.settings.cooldown_s),
                                             left)
    return True


def _require_admin(interaction: discord.Interaction,
                   what: str = "change this server's articles") -> None:
    """Manage Server, or the role whose id NEWSBOT_ADMIN_ROLE names: never a role's name,
    which anyone with Manage Roles can give a role of their own."""
    role = interaction.client.settings.admin_role
    user = interaction.user
    if interaction.permissions.manage_guild:
        return
    if role and isinstance(user, discord.Member) and any(r.id == int(role) for r in user.roles):
        return
    who = "members with Manage Server" + (f" or the <@&{role}> role" if role else "")
    raise NotAdmin(f"Only {who} can {what}.")


class NewsCommands(commands.Cog):
    def __init__(self, bot: BaseBot) -> None:
        self.bot = bot
        self.core = bot.core
        # A message command can't be a decorated cog method; discord.py's way is to build it
        # here and add it to the tree (removed again when the cog unloads).
        self.check_menu = app_commands.ContextMenu(name="Check against the news",
                                                   callback=self.check_news)
        self.check_menu.add_check(_cooldown)  # /ask's cooldown: a check searches as much
        self.bot.tree.add_command(self.check_menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.check_menu.name, type=self.check_menu.type)

    async def check_news(self, interaction: discord.Interaction,
                         message: discord.Message) -> None:
        """Check a message's claims against the stored news articles."""
        # Discord sends the target message's content with the interaction, so this needs no
        # message-content intent. Cheap refusals first, so they stay ephemeral and instant.
        if not (message.content or "").strip():
            raise QuestionError("This message has no text to check (images, files and "
                                "embeds are not read).")
        text = checkable(message.content)
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await self.bot.read(check_text, self.core, text,
                                     visible_libraries(interaction.guild_id))
        embed = check_embed(report, message.author.display_name)
        check_message([embed])
        await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NONE,
                                        view=PostPubliclyView(self.bot, embed))

    @app_commands.command()
    @app_commands.describe(
        question="What you want to know, in plain words",
        source="Only articles from this source",
        since="Only articles published on or after this date (YYYY-MM-DD)",
    )
    @app_commands.check(_cooldown)
    async def ask(self, interaction: discord.Interaction,
                  question: app_commands.Range[str, 1, 1000], source: str | None = None,
                  since: str | None = None) -> None:
        """Answer a question from the stored news articles, quoting the sentences it uses."""
        started = time.perf_counter()
        # Cheap checks first, so a bad question gets an ephemeral reply, not a public one.
        question = self.core.check_question(question)
        since = check_date(since, "since")
        await interaction.response.defer(thinking=True)
        in_thread = await self.bot.read(self.bot.conversations.is_thread,
                                            interaction.channel_id)
        asked = await self._standalone(interaction.channel_id, question) if in_thread \
            else question
        libraries = visible_libraries(interaction.guild_id)
        if self.core.chat_model is None:
            answer = await self.bot.read(self.core.ask, asked, libraries=libraries,
                                             source=source, since=since)
            message = await interaction.followup.send(
                embed=self._embed(answer, asked, question), view=AnswerView(self.bot, answer),
                allowed_mentions=NONE, wait=True)
        else:
            stream = Streamer(interaction)
            try:
                answer = await self.bot.read(self.core.ask, asked, libraries=libraries,
                                                 source=source, since=since,
                                                 on_text=stream.push)
            except BaseException:
                await stream.stop()  # the error reply replaces the partial answer
                raise
            message = await stream.finish(content=None,
                                          embed=self._embed(answer, asked, question),
                                          view=AnswerView(self.bot, answer),
                                          allowed_mentions=NONE)
        self.bot.answer_ms.append((time.perf_counter() - started) * 1000)
        turn = Turn(asked, answer.answer)
        if in_thread:
            await self.bot.read(self.bot.conversations.add, interaction.channel_id, turn)
        elif isinstance(interaction.channel, discord.TextChannel):
            await self._open_thread(interaction.channel, message, question, turn)

    def _embed(self, answer: Answer, asked: str, question: str) -> discord.Embed:
        footer = f"{len(answer.passages)} passages searched \u00b7 " \
                 f"{answer.timings_ms.get('total_ms', 0):.0f} ms"
        if asked != question:
            footer = f"Read as: {asked} \u00b7 {footer}"
        if answer.note:
            footer = f"{answer.note} \u00b7 {footer}"
        embed = answer_embed(answer, footer)
        check_message([embed])
        return embed

    async def _standalone(self, thread_id: int | None, question: str) -> str:
        history = await self.bot.read(self.bot.conversations.history, thread_id,
                                          self.bot.settings.followup_turns)
        asked, _ = await self.bot.read(self.core.standalone, question, history)
        return asked

    async def _open_thread(self, channel: discord.TextChannel, message: discord.Message,
                           question: str, turn: Turn) -> None:
        """Follow-ups go in a thread under the answer; without permission to open one, the
        answer simply stands alone."""
        try:
            thread = await channel.create_thread(name=cut(question, 100), message=message,
                                                 auto_archive_duration=1440)
        except discord.HTTPException as e:
            log.info("no thread for answer %s: %s", message.id, e)
            return
        await self.bot.read(self.bot.conversations.start, thread.id, channel.guild.id,
                                turn)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """A mention of the bot inside one of its answer threads is a follow-up question.
        Discord sends the content of messages that mention the bot without the privileged
        message-content intent."""
        me = self.bot.user
        if message.author.bot or me is None or me not in message.mentions:
            return
        if not await self.bot.read(self.bot.conversations.is_thread, message.channel.id):
            return
        text = re.sub(rf"<@!?{me.id}>", " ", message.content)
        try:
            if not self.bot.mention_cooldown(message.author.id):
                raise NewsbotError("Slow down: ask again in a few seconds.")
            question = self.core.check_question(text)
            async with message.channel.typing():
                asked = await self._standalone(message.channel.id, question)
                answer = await self.bot.read(
                    self.core.ask, asked, libraries=visible_libraries(message.guild.id
                                                                      if message.guild else None))
            await message.reply(embed=self._embed(answer, asked, question),
                                view=AnswerView(self.bot, answer), allowed_mentions=NONE,
                                mention_author=False)
            self.bot.answer_ms.append(answer.timings_ms.get("total_ms", 0))
            await self.bot.read(self.bot.conversations.add, message.channel.id,
                                    Turn(asked, answer.answer))
        except NewsbotError as e:
            await message.reply(str(e), allowed_mentions=NONE, mention_author=False)
        except Exception:
            ref = secrets.token_hex(3)
            log.exception("error %s answering a mention", ref)
            await message.reply(f"Something went wrong on our side (reference `{ref}`).",
                                allowed_mentions=NONE, mention_author=False)

    @ask.autocomplete("source")
    async def _source_choices(self, interaction: discord.Interaction,
                              current: str) -> list[app_commands.Choice[str]]:
        rows = await self.bot.read(self.core.catalog.sources,
                                       visible_libraries(interaction.guild_id))
        needle = current.lower().strip()
        return [app_commands.Choice(name=cut(src, 100), value=src[:100])
                for src, _ in rows if needle in src.lower()][:25]

    @app_commands.command()
    @app_commands.describe(query="Only articles whose title, source or id contains this")
    async def sources(self, interaction: discord.Interaction, query: str | None = None) -> None:
        """List the stored articles this server can search."""
        rows = await self.bot.read(self.core.catalog.articles,
                                       visible_libraries(interaction.guild_id))
        if query:
            q = query.lower()
            rows = [r for r in rows if q in f"{r.title} {r.source} {r.id}".lower()]
        view = SourcesView(self.bot, rows, query or "", interaction.user.id)
        await interaction.response.send_message(embed=view.embed(), view=view, ephemeral=True,
                                                allowed_mentions=NONE)

    @app_commands.command()
    @app_commands.describe(id="The article's id, as /sources shows it")
    async def article(self, interaction: discord.Interaction, id: str) -> None:
        """Show an article's details and its first sentences."""
        libraries = visible_libraries(interaction.guild_id)
        library = await self.bot.read(self.core.catalog.find, id, libraries)
        loaded = library and await self.bot.read(self.core.catalog.load, library, id)
        if not loaded:
            raise NewsbotError(f"No article with id {code(cut(id, 100))} here; "
                               "`/sources` lists them.")
        await interaction.response.send_message(embed=article_embed(*loaded, library),
                                                allowed_mentions=NONE)

    @app_commands.command()
    @app_commands.guild_only()
    @app_commands.describe(file="A .txt, .md, .html, .json or .jsonl file of articles",
                           url="The http(s) address of an article page")
    async def ingest(self, interaction: discord.Interaction,
                     file: discord.Attachment | None = None, url: str | None = None) -> None:
        """Add articles from an attached file or a web page to this server's library (admins)."""
        _require_admin(interaction)
        if (file is None) == (url is None):
            raise NewsbotError("Give either a file or a url.")
        library = guild_library(interaction.guild_id)
        if url is not None:
            # Only a web address: a value from Discord is never read as a path on this host,
            # and anything else gets one refusal, which never tells whether a path exists.
            url = url.strip()
            if not url.lower().startswith(("http://", "https://")):
                raise NewsbotError("`url` must be an http or https address, such as "
                                   "https://example.com/story.")
            try:
                validate_url(url)
            except FetchError as e:
                raise NewsbotError(f"`url` cannot be fetched: {e}.") from None
            # The fetch holds no write slot while it waits on the host: a slow host delays
            # this server's ingest only.
            async with self.bot.fetch_slot(interaction.guild_id):
                await interaction.response.defer(ephemeral=True, thinking=True)
                # Never private addresses from Discord, whatever the operator allows the CLI.
                article = await self.bot.fetch(self.core.fetch_article, url, False)
            async with self.bot.write_slot(interaction.guild_id):
                report = await self.bot.write(self.core.ingest_articles, [article], library,
                                              max_sentences=self.bot.settings
                                              .server_write_sentences)
            await interaction.followup.send(
                f"Ingested into this server's library:\n```\n{cut(report.summary(), 1900)}\n```",
                ephemeral=True, allowed_mentions=NONE)
            return
        limit = self.bot.settings.max_upload_bytes
        suffix = Path(file.filename).suffix.lower()
        # Size and type are checked before a single byte is downloaded.
        if suffix not in UPLOAD_SUFFIXES:
            raise NewsbotError(f"{code(cut(file.filename, 80))} is not a supported type; "
                               f"send one of {', '.join(sorted(UPLOAD_SUFFIXES))}.")
        if file.content_type and not file.content_type.startswith(TEXT_TYPES):
            raise NewsbotError(f"{code(cut(file.filename, 80))} is "
                               f"{escape(file.content_type)}, not text.")
        if file.size > limit:
            raise NewsbotError(f"The file is {file.size:,} bytes; the limit is {limit:,}.")
        async with self.bot.write_slot(interaction.guild_id):
            await interaction.response.defer(ephemeral=True, thinking=True)
            data = await file.read()
            with tempfile.TemporaryDirectory() as tmp:
                # Only the attachment's own bytes, under a name made of its name's letters and
                # digits (which give the article its id): the upload's name never becomes a path.
                path = Path(tmp) / f"{slug(Path(file.filename).stem)}{suffix}"
                path.write_bytes(data[:limit])
                items = await self.bot.parse(lambda: list(iter_articles([path])))
            report = await self.bot.write(self.core.ingest_articles, items, library,
                                          max_sentences=self.bot.settings.server_write_sentences)
        summary = report.summary().replace(str(path), file.filename)
        await interaction.followup.send(f"Ingested {code(cut(file.filename, 80))} into "
                                        f"this server's library:\n"
                                        f"```\n{cut(summary, 1900)}\n```", ephemeral=True,
                                        allowed_mentions=NONE)

    feeds = app_commands.Group(name="feeds", description="RSS and Atom feeds this server follows",
                               guild_only=True)

    @feeds.command(name="add")
    @app_commands.describe(url="The http(s) address of an RSS or Atom feed")
    async def feeds_add(self, interaction: discord.Interaction, url: str) -> None:
        """Follow a feed: its new items are added to this server's library (admins only)."""
        _require_admin(interaction)
        added = await self.bot.read(self.bot.feeds.add, url.strip(),
                                    guild_library(interaction.guild_id), "discord",
                                    self.bot.settings.feed_max_per_server)
        every = self.bot.settings.feed_interval_s
        when = f"every {every / 60:g} minutes" if every else "when the operator runs it"
        await interaction.response.send_message(
            (f"Following <{escape(cut(url, 400))}>; it is polled {when}." if added
             else "This server already follows that feed."), ephemeral=True,
            allowed_mentions=NONE)

    @feeds.command(name="remove")
    @app_commands.describe(url="The feed's address, as /feeds list shows it")
    async def feeds_remove(self, interaction: discord.Interaction, url: str) -> None:
        """Stop following a feed (its articles stay; /remove deletes them) (admins only)."""
        _require_admin(interaction)
        if not await self.bot.read(self.bot.feeds.remove, url,
                                       guild_library(interaction.guild_id)):
            raise NewsbotError("This server follows no such feed; `/feeds list` shows them.")
        await interaction.response.send_message("Stopped following it.", ephemeral=True)

    @feeds.command(name="list")
    async def feeds_list(self, interaction: discord.Interaction) -> None:
        """The feeds this server follows, and how their last poll went."""
        rows = await self.bot.read(self.bot.feeds.list, [guild_library(interaction.guild_id)])
        lines = [f"<{escape(cut(f.url, 300))}> \u00b7 {escape(cut(f.last_status, 200))}"
                 for f in rows]
        await interaction.response.send_message(
            cut("\n".join(lines) or "No feeds yet; `/feeds add` follows one.", 2000),
            ephemeral=True, allowed_mentions=NONE)

    follow = app_commands.Group(
        name="follow", guild_only=True,
        description="Standing questions: answered here when a new article answers them")

    @follow.command(name="add")
    @app_commands.describe(question="The question to answer when the news arrives",
                           channel="Where to post the answer (default: this channel)")
    async def follow_add(self, interaction: discord.Interaction,
                         question: app_commands.Range[str, 1, 1000],
                         channel: discord.TextChannel | None = None) -> None:
        """Post the cited answer when a new article answers this question (admins only)."""
        _require_admin(interaction, "change this server's standing questions")
        question = self.core.check_question(question)
        target = channel.id if channel else interaction.channel_id
        await interaction.response.defer(ephemeral=True, thinking=True)
        follow, new = await self.bot.read(
            add_follow, self.core, self.bot.follows, question,
            visible_libraries(interaction.guild_id), str(interaction.guild_id), str(target),
            str(interaction.user.id))
        every = self.bot.settings.follow_every_s
        await interaction.followup.send(
            f"{'Following' if new else 'Resumed'} #{follow.id}: when a new article answers "
            f"it, the answer is posted in <#{target}> (at most once every "
            f"{every / 60:g} minutes).", ephemeral=True, allowed_mentions=NONE)

    @follow.command(name="list")
    async def follow_list(self, interaction: discord.Interaction) -> None:
        """The standing questions of this server."""
        rows = await self.bot.read(self.bot.follows.list, str(interaction.guild_id))
        lines = []
        for f in rows:
            if f.paused:
                state = f"paused: {f.paused}"
            elif f.last_posted:
                last = dt.datetime.fromisoformat(f.last_posted)
                state = f"last answered {discord.utils.format_dt(last, 'R')}"
            else:
                state = "not answered yet"
            lines.append(f"**#{f.id}** {escape(cut(f.question, 200))} \u00b7 <#{f.channel}> "
                         f"\u00b7 {state}")
        limit = self.bot.settings.follow_max_per_server
        head = f"{len(rows)} of {limit} standing questions"
        await interaction.response.send_message(
            cut("\n".join([head, *lines]) if rows else
                "No standing questions yet; `/follow add` asks one.", 2000),
            ephemeral=True, allowed_mentions=NONE)

    @follow.command(name="remove")
    @app_commands.describe(id="The question's number, as /follow list shows it")
    async def follow_remove(self, interaction: discord.Interaction, id: int) -> None:
        """Stop following a standing question (admins only)."""
        _require_admin(interaction, "change this server's standing questions")
        if not await self.bot.read(self.bot.follows.remove, id, str(interaction.guild_id)):
            raise NewsbotError(f"This server has no standing question #{id}; `/follow list` "
                               "shows them.")
        await interaction.response.send_message(f"Stopped following #{id}.", ephemeral=True)

    @app_commands.command()
    @app_commands.guild_only()
    @app_commands.describe(id="The id of the article to delete from this server's library")
    async def remove(self, interaction: discord.Interaction, id: str) -> None:
        """Delete an article from this server's library (admins only)."""
        _require_admin(interaction)
        async with self.bot.write_slot(interaction.guild_id):
            await interaction.response.defer(ephemeral=True, thinking=True)
            removed = await self.bot.write(self.core.remove, id,
                                           guild_library(interaction.guild_id))
        if not removed:
            raise NewsbotError(f"This server's library has no article {code(cut(id, 100))}.")
        await interaction.followup.send(f"Removed {code(cut(id, 100))}.", ephemeral=True)

    @app_commands.command()
    async def stats(self, interaction: discord.Interaction) -> None:
        """Show how many articles are stored and how fast answers are."""
        libraries = visible_libraries(interaction.guild_id)
        counts = await self.bot.read(self.core.catalog.counts, libraries)
        last = await self.bot.read(self.core.catalog.get_meta, "last_ingest")
        e = discord.Embed(title="newsbot stats", colour=discord.Colour.blurple())
        e.add_field(name="Articles", value=f"{counts['articles']:,}")
        e.add_field(name="Sentences", value=f"{counts['sentences']:,}")
        e.add_field(name="Last ingest", value=discord.utils.format_dt(
            dt.datetime.fromisoformat(last), "R") if last else "never")
        e.add_field(name="Answer latency since start", value=self.bot.latency_summary(),
                    inline=False)
        await interaction.response.send_message(embed=e, ephemeral=True)

    @app_commands.command(name="help")
    async def help_(self, interaction: discord.Interaction) -> None:
        """How to use newsbot."""
        lines = [f"**/{c.name}**: {c.description}" for c in self.bot.tree.get_commands(
            type=discord.AppCommandType.chat_input)]
        lines.append(f"**{self.check_menu.name}** (right-click a message, Apps): each claim "
                     "of the message checked against the articles.")
        cli_only = ", ".join(s for s in SUPPORTED if s not in UPLOAD_SUFFIXES)
        e = discord.Embed(
            title="newsbot",
            description="I answer questions from the stored news articles and quote the "
                        "exact sentences I rely on, with their sources. If the articles "
                        "don't say, I tell you so instead of guessing.\n\n" + "\n".join(lines)
                        + f"\n\nFiles `/ingest` accepts: {', '.join(sorted(UPLOAD_SUFFIXES))}"
                        f" (the command line also reads {cli_only}).",
            colour=discord.Colour.blurple())
        await interaction.response.send_message(embed=e, ephemeral=True)
