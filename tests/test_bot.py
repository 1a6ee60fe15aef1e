"""The real discord.py client against the fake Discord on 127.0.0.1, end to end."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import subprocess
import sys
import time

import discord
import pytest
import yarl

from tests.conftest import LAMBRECHT, REFERENCE_QUESTION, ROOT, SAMPLES, share_models
from tests.fake_discord import GOOD_TOKEN, FakeDiscord

GUILD_A, GUILD_B = 1001, 1002
EDITOR_ROLE = {"id": "5005", "name": "editors", "permissions": "0", "position": 1, "color": 0,
               "colors": {"primary_color": 0}, "hoist": False, "managed": False,
               "mentionable": False, "flags": 0}
# Anyone with Manage Roles can name a role after the admin role's id, or after the admin role.
IMPOSTOR_ROLE = {**EDITOR_ROLE, "id": "6006", "name": "5005", "position": 2}


def test_fake_discord_hooks_still_exist():
    # The fake is reached through these two class attributes; fail loudly if discord.py moves them.
    assert discord.__version__ == "2.7.1"
    assert discord.http.Route.BASE.startswith("https://discord.com/api/v")
    assert isinstance(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY, yarl.URL)


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def extra_settings() -> dict:
    """Settings a test class adds to the bot's (overridden where needed)."""
    return {}


@pytest.fixture
def extra_guilds() -> list[int]:
    """More guilds for a test class (besides GUILD_A and GUILD_B)."""
    return []


@pytest.fixture
async def discord_env(tmp_path, embedder, shipped_reader, monkeypatch, extra_settings,
                      extra_guilds):
    from bot.app import make_bot
    from bot.run import point_at
    from newsbot.settings import Settings
    from retrieval.service import Newsbot

    fake = FakeDiscord()
    await fake.start()
    fake.add_guild(GUILD_A, "Newsroom A", roles=[EDITOR_ROLE, IMPOSTOR_ROLE])
    fake.add_guild(GUILD_B, "Newsroom B")
    for gid in extra_guilds:
        fake.add_guild(gid, f"Newsroom {gid}")
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    point_at(fake.api_base, fake.gateway_url)

    errors = ErrorLog()
    for name in ("discord", "newsbot"):
        logging.getLogger(name).addHandler(errors)
    guilds = ",".join(str(g) for g in (GUILD_A, GUILD_B, *extra_guilds))
    settings = Settings(data_dir=tmp_path / "data", discord_guild_ids=guilds,
                        cooldown_s=0, admin_role="5005", **extra_settings)
    core = Newsbot(settings)
    share_models(core, embedder, shipped_reader)
    core.ingest([SAMPLES])
    await asyncio.to_thread(core.warm)
    bot = make_bot(core, settings, guild_ready_timeout=0.05)
    task = asyncio.create_task(bot.start(GOOD_TOKEN))

    async def ready() -> None:
        while not bot.is_ready():
            if task.done():
                task.result()  # a malformed dispatch kills the client: show why
            await asyncio.sleep(0.01)

    await asyncio.wait_for(ready(), 30)
    env = type("Env", (), {"fake": fake, "bot": bot, "core": core, "errors": errors,
                           "task": task})
    yield env
    # Let commands still at work (a thread being opened after the answer) finish first.
    busy = [t for t in asyncio.all_tasks() if not t.done() and (
        t.get_name() == "CommandTree-invoker" or t.get_name().startswith("discord.py: on_"))]
    if busy:
        await asyncio.wait(busy, timeout=15)
    await bot.close()
    await asyncio.wait_for(task, 10)
    await fake.stop()
    for name in ("discord", "newsbot"):
        logging.getLogger(name).removeHandler(errors)
    core.close()
    unexpected = [r.getMessage() for r in errors.records if not getattr(env, "allow_errors", 0)]
    assert not unexpected, unexpected


async def answered(env, interaction, timeout: float = 30.0) -> dict:
    await env.fake.wait(lambda: interaction.followups or env.task.done(), timeout,
                        "a follow-up")
    assert not env.task.done(), env.task.exception()
    return interaction.followups[0]


async def test_command_sync_payload(discord_env):
    fake = discord_env.fake
    assert set(fake.synced) == {str(GUILD_A), str(GUILD_B)}  # copied to each guild, not empty
    commands = {c["name"]: c for c in fake.synced[str(GUILD_A)]}
    assert set(commands) == {"ask", "sources", "article", "ingest", "remove", "stats", "help",
                             "feeds", "follow", "Check against the news"}
    menu = commands.pop("Check against the news")  # a message command: no description
    assert menu["type"] == 3 and not menu.get("options")
    assert {o["name"] for o in commands["feeds"]["options"]} == {"add", "remove", "list"}
    assert {o["name"] for o in commands["follow"]["options"]} == {"add", "remove", "list"}
    add = {o["name"]: o for o in commands["follow"]["options"][0]["options"]}
    assert add["channel"]["type"] == 7 and add["channel"]["channel_types"] == [0, 5]
    assert commands["ask"]["description"].startswith("Answer a question from the stored news")
    opts = {o["name"]: o for o in commands["ask"]["options"]}
    assert opts["question"]["type"] == 3 and opts["question"]["required"] is True
    assert opts["question"]["max_length"] == 1000
    assert opts["question"]["description"] == "What you want to know, in plain words"
    assert opts["source"]["required"] is False and opts["source"]["autocomplete"] is True
    assert opts["since"]["required"] is False
    ingest = {o["name"]: o for o in commands["ingest"]["options"]}
    assert ingest["file"]["type"] == 11 and ingest["file"]["required"] is False
    assert ingest["url"]["type"] == 3 and ingest["url"]["required"] is False
    for c in commands.values():
        assert c["description"] and all(o["description"] for o in c.get("options", []))


async def test_ask_defers_then_answers_with_the_lambrecht_citation(discord_env):
    fake = discord_env.fake
    i = await fake.command("ask", {"question": REFERENCE_QUESTION}, guild_id=GUILD_A)
    msg = await answered(discord_env, i)
    assert i.callback["type"] == 5 and i.defer_s < 3.0
    embed = msg["embeds"][0]
    assert "[1]" in embed["description"]
    first = embed["fields"][0]
    assert first["name"].startswith("[1] British Defense Minister Ben Wallace")
    assert LAMBRECHT in first["value"] and first["value"].startswith("> ")
    assert "Interfax, <t:" in first["value"] and ":D>" in first["value"]
    assert msg["allowed_mentions"] == {"parse": []}
    labels = [c.get("label") for row in msg["components"] for c in row["components"]]
    assert "Show passages" in labels
    assert fake.rejected == []


async def test_abstention_reply_points_to_sources(discord_env):
    i = await discord_env.fake.command("ask", {"question": "who won the football world cup?"},
                                       guild_id=GUILD_A)
    embed = (await answered(discord_env, i))["embeds"][0]
    assert embed["title"] == "Not found in the articles"
    assert "/sources" in embed["description"] and "fields" not in embed


async def test_show_passages_and_feedback_are_stored_and_exported(discord_env, capsys):
    fake = discord_env.fake
    i = await fake.command("ask", {"question": REFERENCE_QUESTION}, guild_id=GUILD_A)
    msg = await answered(discord_env, i)
    click = await fake.click(msg, "Show passages", guild_id=GUILD_A)
    await fake.wait(lambda: click.callback is not None, what="passages reply")
    reply = click.callback["data"]
    assert reply["flags"] & 64  # ephemeral
    bold = [run.replace("\\", "") for e in reply["embeds"]
            for run in e["description"].split("**")[1::2]]  # the text inside ** ... **
    assert any(LAMBRECHT in run for run in bold), bold
    up = await fake.click(msg, emoji="\U0001f44d", uid=77, guild_id=GUILD_A)
    await fake.wait(lambda: up.followups, what="feedback thanks")
    again = await fake.click(msg, emoji="\U0001f44e", uid=77, guild_id=GUILD_A)
    await fake.wait(lambda: again.callback is not None, what="second vote refused")
    assert "already rated" in again.callback["data"]["content"]

    from newsbot.cli import main

    assert main(["--data-dir", str(discord_env.core.data_dir), "feedback", "--json"]) == 0
    [row] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert row["vote"] == "up" and row["question"] == REFERENCE_QUESTION
    assert LAMBRECHT in row["citations"][0]["quote"]
    # Neither the id nor the name is stored ("77" can occur by chance inside scores).
    assert row["user_hash"] != "77" and "user77" not in json.dumps(row)
    assert "77" not in {str(v) for v in row.values()} and set(row) >= {"user_hash"}


async def test_twenty_concurrent_asks_are_all_deferred_in_time_and_answered(discord_env):
    fake = discord_env.fake
    questions = [REFERENCE_QUESTION, "what did EU ministers ban?",
                 "how long did the French minister's talks in Moscow last?",
                 "why was the pipeline decision delayed?"]
    sent = await asyncio.gather(*(fake.command("ask", {"question": questions[n % 4]},
                                               guild_id=GUILD_A, uid=100 + n)
                                  for n in range(20)))
    await fake.wait(lambda: all(i.followups for i in sent), 60, "20 follow-ups")
    assert all(i.callback["type"] == 5 and i.defer_s < 3.0 for i in sent), [
        i.defer_s for i in sent]
    assert [e for e in fake.errors if e[2]["code"] == 10062] == []


async def test_source_autocomplete_lists_stored_sources(discord_env):
    i = await discord_env.fake.command("ask", {"question": "x", "source": "inter"},
                                       guild_id=GUILD_A, focused="source")
    await discord_env.fake.wait(lambda: i.callback is not None, what="autocomplete")
    assert i.callback["type"] == 8
    assert i.callback["data"]["choices"] == [{"name": "Interfax", "value": "Interfax"}]


async def test_ingest_attachment_admin_only_and_guilds_isolated(discord_env):
    fake = discord_env.fake
    text = (b"Harbour ferry strike\nKiel. March 3. NEWSBOT SAMPLE WIRE - The harbour ferry "
            b"crews in Kiel went on strike over rosters on Thursday.\n")

    def attachment(name="kiel.txt", data=text, ctype="text/plain; charset=utf-8"):
        att = fake.upload(name, data, ctype)
        return {"file": att["id"]}, {"attachments": {att["id"]: att}}

    opts, resolved = attachment()
    denied = await fake.command("ingest", opts, guild_id=GUILD_A, resolved=resolved)
    await fake.wait(lambda: denied.callback is not None, what="permission denied")
    assert denied.callback["data"]["flags"] & 64
    assert "Only members with Manage Server or the <@&5005> role" in \
        denied.callback["data"]["content"]

    # The admin role is known by its id (NEWSBOT_ADMIN_ROLE=5005), never by a name.
    opts, resolved = attachment()
    impostor = await fake.command("ingest", opts, guild_id=GUILD_A, roles=["6006"],
                                  resolved=resolved)
    await fake.wait(lambda: impostor.callback is not None, what="impostor denied")
    assert "Only members with Manage Server" in impostor.callback["data"]["content"]

    opts, resolved = attachment()
    ok = await fake.command("ingest", opts, guild_id=GUILD_A, roles=["5005"], resolved=resolved)
    reply = await answered(discord_env, ok)
    assert "added 1" in reply["content"] and "kiel.txt" in reply["content"]

    q = {"question": "why did the Kiel ferry crews strike?"}
    in_a = await answered(discord_env, await fake.command("ask", q, guild_id=GUILD_A))
    assert "rosters" in in_a["embeds"][0]["fields"][0]["value"]
    in_b = await answered(discord_env, await fake.command("ask", q, guild_id=GUILD_B, uid=9))
    assert in_b["embeds"][0]["title"] == "Not found in the articles"
    in_dm = await answered(discord_env, await fake.command("ask", q, uid=10))
    assert in_dm["embeds"][0]["title"] == "Not found in the articles"

    # Size and type are refused before anything is downloaded.
    for name, data, ctype, words in (("big.txt", b"x" * 6_000_000, "text/plain", "the limit"),
                                     ("photo.png", b"\x89PNG", "image/png", "not a supported"),
                                     ("fake.txt", b"\x89PNG", "image/png", "not text")):
        opts, resolved = attachment(name, data, ctype)
        i = await fake.command("ingest", opts, guild_id=GUILD_A, admin=True, resolved=resolved)
        await fake.wait(lambda i=i: i.callback is not None, what=f"refusal of {name}")
        assert words in i.callback["data"]["content"] and i.callback["data"]["flags"] & 64

    # /remove works on this guild's library only.
    rm = await fake.command("remove", {"id": "kiel"}, guild_id=GUILD_B, admin=True)
    assert "has no article" in (await answered(discord_env, rm))["content"]
    rm = await fake.command("remove", {"id": "kiel"}, guild_id=GUILD_A, admin=True)
    assert "Removed" in (await answered(discord_env, rm))["content"]


async def test_discord_limits_hold_for_huge_quotes_and_many_citations():
    from bot.present import answer_embed, check_message, passage_embeds
    from retrieval.models import Answer, Citation, Passage
    from tests.fake_discord import limit_problems

    quote = ("@everyone " + "**bold** _it_ `code` \\ " * 200)[:3000]
    cites = [Citation(n=n, quote=quote, article_id=f"a{n}", title="T" * 300, source="S" * 200,
                      published="2022-01-27", url="https://example.org/" + "x" * 200,
                      start=0, end=3000, score=0.9) for n in range(1, 31)]
    passages = [Passage(article_id=f"a{n}", library="global", chunk_index=0, start=0, end=3000,
                        first_sentence=0, last_sentence=0, text=quote, title="T" * 300,
                        source="S", published="", url="", score=1.0) for n in range(1, 31)]
    answer = Answer(question="q" * 5000, answer=" ".join(f"{quote} [{n}]" for n in range(1, 31)),
                    abstained=False, citations=cites, passages=passages)
    embeds = [answer_embed(answer, "footer " * 500)]
    check_message(embeds)
    assert limit_problems({"embeds": [e.to_dict() for e in embeds]}) == []
    assert "@everyone" not in json.dumps(embeds[0].to_dict()).replace("@\u200beveryone", "")
    pe = passage_embeds(answer)
    check_message(pe)
    assert limit_problems({"embeds": [e.to_dict() for e in pe]}) == []


async def test_errors_are_ephemeral_with_a_reference(discord_env, caplog):
    fake = discord_env.fake
    long_q = await fake.command("ask", {"question": "x " * 3000}, guild_id=GUILD_A)
    await fake.wait(lambda: long_q.callback is not None, what="long question reply")
    assert long_q.callback["data"]["flags"] & 64
    assert "characters long; the limit is 1,000" in long_q.callback["data"]["content"]
    bad_date = await fake.command("ask", {"question": "sanctions?", "since": "soon"},
                                  guild_id=GUILD_A)
    await fake.wait(lambda: bad_date.callback is not None, what="bad date reply")
    assert "since must be a date" in bad_date.callback["data"]["content"]

    def broken(*a, **k):
        raise RuntimeError("secret internal detail")

    discord_env.allow_errors = 1
    discord_env.core.ask = broken
    i = await fake.command("ask", {"question": REFERENCE_QUESTION}, guild_id=GUILD_A)
    msg = await answered(discord_env, i)
    assert i.deleted_original and msg["flags"] & 64
    assert "reference `" in msg["content"] and "secret internal detail" not in msg["content"]
    ref = msg["content"].split("`")[1]
    logged = [r for r in discord_env.errors.records if ref in r.getMessage()]
    assert logged and "secret internal detail" in str(logged[0].exc_info[1])


async def test_cooldown_per_user(discord_env):
    discord_env.bot.settings.cooldown_s = 30
    fake = discord_env.fake
    first = await fake.command("ask", {"question": REFERENCE_QUESTION}, guild_id=GUILD_A, uid=5)
    await answered(discord_env, first)
    second = await fake.command("ask", {"question": REFERENCE_QUESTION}, guild_id=GUILD_A, uid=5)
    await fake.wait(lambda: second.callback is not None, what="cooldown reply")
    assert second.callback["data"]["content"].startswith("Slow down: you can ask again in")
    other = await fake.command("ask", {"question": REFERENCE_QUESTION}, guild_id=GUILD_A, uid=6)
    await answered(discord_env, other)


async def test_check_against_the_news_shares_the_ask_cooldown(discord_env):
    discord_env.bot.settings.cooldown_s = 30
    fake = discord_env.fake
    first = await fake.command("ask", {"question": REFERENCE_QUESTION}, guild_id=GUILD_A, uid=8)
    await answered(discord_env, first)
    msg = fake.member_message(GUILD_A, "Ben Wallace will meet Sergei Shoigu soon.", uid=55)
    checks = [await fake.message_command("Check against the news", msg, guild_id=GUILD_A,
                                         uid=8) for _ in range(3)]
    for i in checks:
        await fake.wait(lambda i=i: i.callback is not None, what="cooldown reply")
        assert i.callback["type"] == 4 and i.callback["data"]["flags"] & 64
        assert i.callback["data"]["content"].startswith("Slow down: you can ask again in")
    # Another member's check goes through, and then counts against their /ask.
    other = await fake.message_command("Check against the news", msg, guild_id=GUILD_A, uid=9)
    assert (await answered(discord_env, other))["embeds"][0]["title"] == \
        "Checked against the news"
    again = await fake.command("ask", {"question": REFERENCE_QUESTION}, guild_id=GUILD_A, uid=9)
    await fake.wait(lambda: again.callback is not None, what="cooldown reply")
    assert again.callback["data"]["content"].startswith("Slow down")


HOSTILE_TITLE = "**[Official notice](https://evil.example/login)** @everyone"
PLANTED_LINKS = ("The port of Kiel reopened on Friday after the storm, the harbour office said; "
                 "[Read the official port statement](https://phish.example/login) or "
                 "[see the harbour map](https://phish.example/map) for details. Ferries ran "
                 "again on Saturday.")


async def test_planted_links_and_a_hostile_title_are_inert(discord_env):
    from retrieval.models import Article
    from tests.fake_discord import embed_texts, masked_links

    fake = discord_env.fake
    await asyncio.to_thread(discord_env.core.ingest_articles, [Article(
        id="port_notice_2023", title=HOSTILE_TITLE, text=PLANTED_LINKS,
        source="[Port office](https://evil.example/src)", url="https://news.example/port")])
    i = await fake.command("ask", {"question": "when did the port of Kiel reopen?"},
                           guild_id=GUILD_A)
    answer = await answered(discord_env, i)
    [field] = [f for f in answer["embeds"][0]["fields"] if "reopened on Friday" in f["value"]]
    assert field["name"].startswith("[1] \\*\\*\\[Official notice\\](https://evil.example")
    click = await fake.click(answer, "Show passages", guild_id=GUILD_A)
    await fake.wait(lambda: click.callback is not None, what="passages")
    found = await fake.command("sources", {"query": "port"}, guild_id=GUILD_A)
    shown = await fake.command("article", {"id": "port_notice_2023"}, guild_id=GUILD_A)
    await fake.wait(lambda: found.callback and shown.callback, what="sources and article")
    payloads = [answer, click.callback["data"], found.callback["data"], shown.callback["data"]]
    texts = [t for payload in payloads for t in embed_texts(payload)]
    assert any("phish.example/login" in t for t in texts)  # shown, but as plain text
    # The only live links are the bot's own: titles linked to their articles' URLs.
    targets = {url for t in texts for _, url in masked_links(t)}
    assert not {t for t in targets if "evil.example" in t or "phish.example" in t}, targets
    assert "https://news.example/port" in targets
    assert not any("@everyone" in t for t in texts)
    # Ids in code spans are verbatim, so they can be pasted into /article.
    assert "`port_notice_2023`" in found.callback["data"]["embeds"][0]["description"]
    fields = {f["name"]: f["value"] for f in shown.callback["data"]["embeds"][0]["fields"]}
    assert fields["ID"] == "`port_notice_2023`"


async def test_sources_pages_article_stats_help(discord_env):
    fake = discord_env.fake
    s = await fake.command("sources", guild_id=GUILD_A)
    await fake.wait(lambda: s.callback is not None, what="sources")
    page = s.callback["data"]
    assert "interfax-wallace-2022-01-27" in page["embeds"][0]["description"]
    assert page["embeds"][0]["footer"]["text"].startswith("Page 1 of 1 \u00b7 8 articles")
    a = await fake.command("article", {"id": "interfax-wallace-2022-01-27"}, guild_id=GUILD_A)
    await fake.wait(lambda: a.callback is not None, what="article")
    fields = {f["name"]: f["value"] for f in a.callback["data"]["embeds"][0]["fields"]}
    assert fields["Source"] == "Interfax" and fields["Place"] == "London"
    st = await fake.command("stats", guild_id=GUILD_A)
    await fake.wait(lambda: st.callback is not None, what="stats")
    assert {"name": "Articles", "value": "8", "inline": True} in \
        st.callback["data"]["embeds"][0]["fields"]
    h = await fake.command("help", guild_id=GUILD_A)
    await fake.wait(lambda: h.callback is not None, what="help")
    assert "/ask" in h.callback["data"]["embeds"][0]["description"]
    assert "Check against the news" in h.callback["data"]["embeds"][0]["description"]


async def test_sources_pagination_buttons(discord_env, tmp_path):
    records = [{"id": f"p{n}", "title": f"Page story {n}", "text": f"Story {n} is short.",
                "source": "Pager", "published": f"2023-01-{n + 1:02d}"} for n in range(23)]
    path = tmp_path / "many.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    await asyncio.to_thread(discord_env.core.ingest, [path])
    fake = discord_env.fake
    s = await fake.command("sources", {"query": "page story"}, guild_id=GUILD_A)
    await fake.wait(lambda: s.callback is not None, what="sources")
    msg = s.original
    assert msg["embeds"][0]["footer"]["text"].startswith("Page 1 of 3 \u00b7 23 articles")
    nxt = await fake.click(msg, "Next", guild_id=GUILD_A)
    await fake.wait(lambda: nxt.callback is not None, what="next page")
    assert nxt.callback["type"] == 7
    assert nxt.callback["data"]["embeds"][0]["footer"]["text"].startswith("Page 2 of 3")


async def test_rate_limit_is_retried_and_gateway_resumes(discord_env):
    fake = discord_env.fake
    fake.rate_limits[r"POST /webhooks/\d+/[^/]+"] = 1
    i = await fake.command("ask", {"question": REFERENCE_QUESTION}, guild_id=GUILD_A)
    msg = await answered(discord_env, i)
    assert fake.rate_limited and LAMBRECHT in msg["embeds"][0]["fields"][0]["value"]
    await fake.reconnect()
    await asyncio.wait_for(fake.resumed.wait(), 20)
    assert fake.resumes == 1 and fake.identifies == 1
    after = await fake.command("ask", {"question": REFERENCE_QUESTION}, guild_id=GUILD_A, uid=3)
    await answered(discord_env, after)


def _run_cli(env: dict, tmp_path) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "NEWSBOT_"))}
    full.update(env, NEWSBOT_DATA_DIR=str(tmp_path / "data"))
    return subprocess.run([sys.executable, "-m", "newsbot", "run"], capture_output=True,
                          text=True, cwd=tmp_path, env=full, timeout=120)


def test_run_without_a_token_is_one_line_and_exit_2(tmp_path):
    r = _run_cli({}, tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == ("newsbot: DISCORD_TOKEN is not set: put the bot token in .env "
                                "or the environment (see .env.example)")


async def test_run_with_a_rejected_token_is_a_clear_error(tmp_path):
    fake = FakeDiscord()
    await fake.start()
    try:
        token = "rejected.secret.value"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "newsbot", "run", cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("NEWSBOT_")},
                 "DISCORD_TOKEN": token, "DISCORD_API_BASE": fake.api_base,
                 "DISCORD_GATEWAY_URL": fake.gateway_url,
                 "NEWSBOT_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)})
        _, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        await fake.stop()
    err_text = err.decode()
    assert proc.returncode == 2, err_text
    assert err_text.strip().splitlines()[-1] == (
        "newsbot: Discord rejected DISCORD_TOKEN (401 Unauthorized): check the token in .env")
    assert "Traceback" not in err_text and token not in err_text
    assert "model and store ready" in err_text


# -- follow-up questions in threads, and streamed LLM answers
# One the article answers (whom he met in the Netherlands it never says).
FOLLOW_UP = "and which countries will he visit next week?"


async def test_ask_opens_a_thread_where_a_follow_up_is_answered(discord_env):
    fake = discord_env.fake
    first = await fake.command("ask", {"question": REFERENCE_QUESTION}, guild_id=GUILD_A)
    msg = await answered(discord_env, first)
    await fake.wait(lambda: fake.threads, what="a thread under the answer")
    [(thread_id, thread)] = fake.threads.items()
    assert thread_id == int(msg["id"]) and thread["name"] == REFERENCE_QUESTION

    follow = await fake.command("ask", {"question": FOLLOW_UP}, guild_id=GUILD_A,
                                channel_id=thread_id)
    reply = await answered(discord_env, follow)
    assert follow.defer_s < 3.0 and reply["channel_id"] == str(thread_id)
    embed = reply["embeds"][0]
    assert "Slovakia and Hungary" in embed["fields"][0]["value"]
    assert embed["fields"][0]["name"].startswith("[1] British Defense Minister Ben Wallace")
    assert "Read as: which countries will Wallace visit next week?" in embed["footer"]["text"]
    assert len(fake.threads) == 1  # no thread inside a thread

    # The conversation is on disk: a restarted bot still has both turns.
    from bot.conversations import Conversations

    saved = Conversations(discord_env.core.data_dir / "conversations.sqlite3")
    # The turn is recorded just after the reply is sent.
    await fake.wait(lambda: len(saved.history(thread_id, 5)) == 2, what="the second turn")
    assert [t.question for t in saved.history(thread_id, 5)] == [
        REFERENCE_QUESTION, "which countries will Wallace visit next week?"]
    saved.close()


async def test_mention_in_an_answer_thread_is_a_follow_up(discord_env):
    fake = discord_env.fake
    first = await fake.command("ask", {"question": REFERENCE_QUESTION}, guild_id=GUILD_A)
    await answered(discord_env, first)
    await fake.wait(lambda: fake.threads, what="a thread under the answer")
    [thread_id] = fake.threads
    asked = await fake.mention(thread_id, FOLLOW_UP)
    await fake.wait(lambda: fake.posted.get(thread_id), what="a reply in the thread")
    [reply] = fake.posted[thread_id]
    assert str(reply["message_reference"]["message_id"]) == asked["id"]
    assert reply["allowed_mentions"]["parse"] == []
    assert reply["allowed_mentions"]["replied_user"] is False
    assert "Slovakia and Hungary" in reply["embeds"][0]["fields"][0]["value"]

    # Outside its threads, a mention is not a question for the bot.
    await fake.mention(fake.channels[GUILD_A], FOLLOW_UP)
    await asyncio.sleep(0.5)
    assert fake.channels[GUILD_A] not in fake.posted


@pytest.fixture
def llm_stub():
    from tests.llm_stub import LLMStub

    stub = LLMStub().start()
    yield stub
    stub.stop()


class TestStreamedLLMAnswers:
    @pytest.fixture
    def extra_settings(self, llm_stub):
        return {"llm_provider": "openai", "llm_model": "stub-model",
                "llm_base_url": f"{llm_stub.base_url}/v1", "llm_timeout_s": 20}

    async def test_answer_streams_into_the_reply_at_most_once_a_second(self, discord_env,
                                                                       llm_stub):
        from tests.llm_stub import Reply, evidence_number

        def script(prompt: str) -> str:
            a, b = evidence_number(prompt, "Lambrecht"), evidence_number(prompt, "stronger")
            return (f"Wallace met his German counterpart Christina Lambrecht [{a}]. He also met "
                    f"the Pope 7 times [{a}]. He wants a stronger signal about sanctions from "
                    f"Germany [{b}]. Nord Stream 2 should be used as a lever of pressure on "
                    f"the Kremlin, he said [{a}].")

        llm_stub.play(Reply(script, chunk_delay_s=0.12))
        fake = discord_env.fake
        i = await fake.command("ask", {"question": REFERENCE_QUESTION}, guild_id=GUILD_A)
        await fake.wait(lambda: any(e[1].get("embeds") for e in i.edits), 30, "final edit")
        assert i.callback["type"] == 5 and i.defer_s < 3.0
        partial = [body for _, body in i.edits if not body.get("embeds")]
        final = i.edits[-1][1]
        assert len(partial) >= 2, i.edits
        assert all(b["content"].endswith("\u2026") for b in partial)
        assert partial[0]["content"].startswith(
            "Wallace met his German counterpart Christina Lambrecht [1].")
        assert not any("Pope" in b["content"] for b in partial)  # never shown, even briefly
        times = [t for t, _ in i.edits]
        assert all(b - a >= 0.95 for a, b in itertools.pairwise(times)), times
        assert not final.get("content") and final["allowed_mentions"]["parse"] == []
        embed = final["embeds"][0]
        assert "Pope" not in embed["description"]
        assert LAMBRECHT in embed["fields"][0]["value"]
        assert "1 unsupported sentence removed" in embed["footer"]["text"]
        assert final["components"]
        assert i.followups == []  # the streamed reply became the answer; no second message

    async def test_failing_llm_still_answers_from_the_articles(self, discord_env, llm_stub):
        from tests.llm_stub import Reply

        llm_stub.play(Reply(status=500))
        fake = discord_env.fake
        i = await fake.command("ask", {"question": REFERENCE_QUESTION}, guild_id=GUILD_A)
        await fake.wait(lambda: any(e[1].get("embeds") for e in i.edits), 30, "final edit")
        embed = i.edits[-1][1]["embeds"][0]
        assert LAMBRECHT in embed["fields"][0]["value"]
        assert "server error (500)" in embed["footer"]["text"]


async def reply_text(env, interaction) -> str:
    await env.fake.wait(lambda: interaction.followups or (
        interaction.callback and interaction.callback["type"] == 4), what="a reply")
    if interaction.followups:
        return interaction.followups[0]["content"]
    return interaction.callback["data"]["content"]


async def test_ingest_url_from_discord_never_reaches_private_addresses(discord_env):
    from tests.web_stub import Route, WebStub, page

    web = WebStub().start()
    web.routes["/a"] = Route(page("Harbour news", "The harbour reopened on Monday. " * 5))
    discord_env.bot.settings.allow_private_urls = True  # the operator's CLI setting
    try:
        fake = discord_env.fake
        i = await fake.command("ingest", {"url": web.url("/a")}, guild_id=GUILD_A, admin=True)
        text = await reply_text(discord_env, i)
        assert "failed 1" in text and "private network" in text
        assert web.hits == []
        both = await fake.command("ingest", {}, guild_id=GUILD_A, admin=True)
        assert await reply_text(discord_env, both) == "Give either a file or a url."
        denied = await fake.command("ingest", {"url": web.url("/a")}, guild_id=GUILD_A)
        assert "Only members with Manage Server" in await reply_text(discord_env, denied)
    finally:
        web.stop()


async def test_feeds_commands_manage_the_guilds_feeds(discord_env):
    fake = discord_env.fake
    url = "https://news.example/feed.xml"
    added = await fake.command("feeds", {"url": url}, sub="add", guild_id=GUILD_A, admin=True)
    assert (await reply_text(discord_env, added)).startswith("Following <https://news.example")
    again = await fake.command("feeds", {"url": url}, sub="add", guild_id=GUILD_A, admin=True)
    assert "already follows" in await reply_text(discord_env, again)
    denied = await fake.command("feeds", {"url": url}, sub="add", guild_id=GUILD_A)
    assert "Only members with Manage Server" in await reply_text(discord_env, denied)
    [feed] = discord_env.bot.feeds.list()
    assert (feed.library, feed.added_by) == (f"guild-{GUILD_A}", "discord")
    listed = await fake.command("feeds", {}, sub="list", guild_id=GUILD_A)
    assert "news.example" in await reply_text(discord_env, listed)
    other = await fake.command("feeds", {}, sub="list", guild_id=GUILD_B)
    assert "No feeds yet" in await reply_text(discord_env, other)  # guilds kept apart
    gone = await fake.command("feeds", {"url": url}, sub="remove", guild_id=GUILD_A, admin=True)
    assert await reply_text(discord_env, gone) == "Stopped following it."
    assert discord_env.bot.feeds.list() == []


class TestFeedPolling:
    @pytest.fixture
    def extra_settings(self):
        return {"feed_interval_s": 0.5, "allow_private_urls": True}

    async def test_the_bot_polls_feeds_in_the_background(self, discord_env, loopback_is_public):
        from tests.web_stub import Route, WebStub, page, rss

        web = WebStub().start()
        try:
            body = "The Lindholm harbour reopened on Monday after a week of storms. " * 3
            web.routes["/a"] = Route(page("Harbour reopens", body))
            web.routes["/feed.xml"] = Route(rss("Lindholm Local", [
                ("a", web.url("/a"), "Harbour reopens", "Storms over")]),
                content_type="application/rss+xml", etag='"1"')
            discord_env.bot.feeds.add(web.url("/feed.xml"), "global")  # an operator's feed
            core = discord_env.core
            before = core.catalog.counts(["global"])["articles"]
            await discord_env.fake.wait(
                lambda: core.catalog.counts(["global"])["articles"] == before + 1, 20,
                "the feed's article")
            i = await discord_env.fake.command(
                "ask", {"question": "when did the Lindholm harbour reopen?"}, guild_id=GUILD_A)
            embed = (await answered(discord_env, i))["embeds"][0]
            assert "harbour reopened on Monday" in embed["fields"][0]["value"]
        finally:
            web.stop()


class TestSharded:
    @pytest.fixture
    def extra_settings(self):
        return {"sharded": True}

    async def test_sharded_bot_answers(self, discord_env):
        import discord as d

        assert isinstance(discord_env.bot, d.AutoShardedClient)
        i = await discord_env.fake.command("ask", {"question": REFERENCE_QUESTION},
                                           guild_id=GUILD_A)
        msg = await answered(discord_env, i)
        assert LAMBRECHT in msg["embeds"][0]["fields"][0]["value"]


# -- issue 11: no local paths from Discord, no frozen bot, replies within limits ----------------
async def test_ingest_url_never_reads_a_local_path(discord_env, tmp_path):
    notes = tmp_path / "notes" / "operator-notes.txt"
    notes.parent.mkdir()
    notes.write_text("Operator notes\nThe staging password is hunter2 and the backup is weekly.\n")
    fake = discord_env.fake
    before = discord_env.core.catalog.counts()
    replies = []
    for value in (str(notes), str(tmp_path / "notes" / "missing.txt"), "/dev/zero",
                  f"file://{notes}", "notes/operator-notes.txt"):
        i = await fake.command("ingest", {"url": value}, guild_id=GUILD_A, admin=True)
        replies.append(await reply_text(discord_env, i))
    # One refusal for all: the reply never tells whether a path exists.
    assert set(replies) == {"`url` must be an http or https address, such as "
                            "https://example.com/story."}
    assert discord_env.core.catalog.counts() == before
    art = await fake.command("article", {"id": "operator-notes"}, guild_id=GUILD_A)
    assert "No article with id" in await reply_text(discord_env, art)


def slow_upload(n: int) -> bytes:
    """An article of ~160 sentences: a few seconds of embedding on two cores."""
    lines = [f"Harbour report {n}", f"Kiel. March {n % 28 + 1}. NEWSBOT SAMPLE WIRE - "]
    lines += [f"Ferry number {k} of fleet {n} left the harbour at {k % 12 + 1} o'clock with "
              f"{k * 3 + n} passengers aboard." for k in range(160)]
    return "\n".join(lines).encode()


class TestWritesNeverFreezeTheBot:
    @pytest.fixture
    def extra_guilds(self):
        return [2001, 2002, 2003, 2004, 2005]

    async def test_six_slow_writes_leave_other_guilds_answered(self, discord_env):
        fake = discord_env.fake
        writers = []
        for n, gid in enumerate((GUILD_A, 2001, 2002, 2003, 2004, 2005)):
            att = fake.upload(f"report-{n}.txt", slow_upload(n), "text/plain")
            writers.append(await fake.command("ingest", {"file": att["id"]}, guild_id=gid,
                                              admin=True,
                                              resolved={"attachments": {att["id"]: att}}))
        # A second write from a server that already has one: told at once, not queued.
        att = fake.upload("again.txt", slow_upload(9), "text/plain")
        again = await fake.command("ingest", {"file": att["id"]}, guild_id=GUILD_A, admin=True,
                                   resolved={"attachments": {att["id"]: att}})
        sources = await fake.command("sources", guild_id=GUILD_B)
        ask = await fake.command("ask", {"question": REFERENCE_QUESTION}, guild_id=GUILD_B,
                                 uid=77)
        remove = await fake.command("remove", {"id": "nothing-here"}, guild_id=GUILD_B,
                                    admin=True)
        await fake.wait(lambda: sources.callback is not None, 3, "/sources")
        assert sources.callback["type"] == 4 and sources.acked_at - sources.created < 3
        answer = await answered(discord_env, ask, 30)
        assert LAMBRECHT in answer["embeds"][0]["fields"][0]["value"]
        # Questions were answered while the writes were still queued behind each other.
        assert sum(1 for w in writers if w.followups) < len(writers)
        assert "already has an ingest or removal running" in await reply_text(discord_env,
                                                                              again)
        await fake.wait(lambda: all(w.followups for w in writers) and remove.followups, 240,
                        "every write")
        assert all(w.defer_s < 3 for w in (*writers, remove)), [w.defer_s for w in writers]
        assert all("added 1" in w.followups[0]["content"] for w in writers)
        assert "has no article" in remove.followups[0]["content"]
        assert [e for e in fake.errors if e[2]["code"] == 10062] == []


async def test_a_huge_since_gets_a_reply_within_discords_limits(discord_env):
    fake = discord_env.fake
    i = await fake.command("ask", {"question": "sanctions?", "since": "9" * 3000},
                           guild_id=GUILD_A)
    text = await reply_text(discord_env, i)
    assert text.startswith("since must be a date like 2022-01-27") and len(text) <= 2000
    assert i.callback["data"]["flags"] & 64


async def test_check_against_the_news_gives_a_verdict_per_claim(discord_env):
    fake = discord_env.fake
    text = ("<@&5> Ben Wallace will meet Russian Defense Minister Sergei Shoigu soon. The EU "
            "package bans the export of luxury goods worth more than 900 euros. A local bakery "
            "won the national sourdough championship.")
    msg = fake.member_message(GUILD_A, text, uid=55)
    i = await fake.message_command("Check against the news", msg, guild_id=GUILD_A)
    reply = await answered(discord_env, i)
    assert i.callback["type"] == 5 and i.defer_s < 3.0
    assert i.callback["data"]["flags"] & 64 and reply["flags"] & 64  # ephemeral
    embed = reply["embeds"][0]
    assert embed["title"] == "Checked against the news" and "user55" in embed["description"]
    names = [f["name"] for f in embed["fields"]]
    assert [n.split(" ", 2)[2] for n in names] == [
        "Supported by the articles", "The articles say otherwise", "Not in the articles"]
    supported, disputed, missing = (f["value"] for f in embed["fields"])
    assert "Sergei Shoigu" in supported and "Interfax, <t:" in supported
    assert "300 euros" in disputed and "900" in disputed
    assert "sourdough" in missing and "<t:" not in missing
    assert reply["allowed_mentions"] == {"parse": []}
    # One click posts the same verdicts for everyone, still pinging no one.
    click = await fake.click(reply, "Post publicly", guild_id=GUILD_A, uid=55)
    await fake.wait(lambda: click.callback is not None, what="public post")
    public = click.callback["data"]
    assert click.callback["type"] == 4 and not public.get("flags", 0) & 64
    assert public["embeds"][0]["fields"] == embed["fields"]
    assert public["allowed_mentions"] == {"parse": []}
    assert fake.rejected == []


@pytest.mark.parametrize("content, error", [
    ("", "no text to check"),
    ("Wow! Nice.", "nothing to check"),
])
async def test_check_against_the_news_refuses_empty_or_image_only_messages(discord_env, content,
                                                                           error):
    fake = discord_env.fake
    image = {"id": "1", "filename": "photo.png", "size": 10, "url": "https://x/photo.png",
             "proxy_url": "https://x/photo.png", "content_type": "image/png"}
    msg = fake.member_message(GUILD_A, content, attachments=[image])
    i = await fake.message_command("Check against the news", msg, guild_id=GUILD_A)
    # Refused before deferring (no text) or after (no sentence): either way only to the user.
    await fake.wait(lambda: (i.callback or {}).get("type") == 4 or i.followups,
                    what="refusal")
    reply = i.callback["data"] if i.callback["type"] == 4 else i.followups[0]
    assert reply["flags"] & 64 and error in reply["content"]


async def test_close_waits_for_a_feed_poll_in_flight(discord_env):
    # A poll still running when the bot closes used to meet a closed feeds database.
    bot, done = discord_env.bot, []

    def slow_poll():
        time.sleep(0.5)
        done.append(bot.feeds.list())

    job = asyncio.create_task(bot._run(bot._polls, slow_poll))
    await asyncio.sleep(0.1)
    job.cancel()  # as close() cancels the poller
    await bot.close()
    assert done == [[]]


class TestStandingQuestions:
    @pytest.fixture
    def extra_settings(self):
        return {"follow_scan_s": 0.3, "follow_max_per_server": 2}

    @staticmethod
    async def ingest_json(env, name: str, text: str, url: str = "") -> str:
        fake = env.fake
        rec = {"id": name, "title": f"{name} story", "text": text, "source": "Test Wire",
               "published": "2023-08-31", "url": url or f"https://example.com/{name}"}
        att = fake.upload(f"{name}.json", json.dumps(rec).encode(), "application/json")
        i = await fake.command("ingest", {"file": att["id"]}, guild_id=GUILD_A, admin=True,
                               resolved={"attachments": {att["id"]: att}})
        return await reply_text(env, i)

    async def test_follow_posts_the_cited_answer_once_in_its_channel(self, discord_env):
        from tests.test_follow import QUESTION, SHAPPS, UNRELATED

        fake, env = discord_env.fake, discord_env
        news = await fake.add_channel(GUILD_A, "news")
        denied = await fake.command("follow", {"question": QUESTION}, sub="add",
                                    guild_id=GUILD_A)
        assert "Only members with Manage Server or the <@&5005> role can change this " \
               "server's standing questions" in await reply_text(env, denied)
        add = await fake.command("follow", {"question": QUESTION, "channel": news}, sub="add",
                                 guild_id=GUILD_A, roles=["5005"],
                                 resolved=fake.channel_option(news))
        assert (await reply_text(env, add)).startswith(f"Following #1: when a new article "
                                                       f"answers it, the answer is posted in "
                                                       f"<#{news}>")
        assert add.defer_s is not None and add.defer_s < 3
        assert "added 1" in await self.ingest_json(env, "fish", UNRELATED)
        assert "added 1" in await self.ingest_json(env, "shapps", SHAPPS)
        await fake.wait(lambda: fake.posted.get(news), 20, "the standing question's answer")
        [post] = fake.posted[news]
        assert post["allowed_mentions"] == {"parse": []}
        embed = post["embeds"][0]
        assert embed["title"] == QUESTION
        assert "Grant Shapps will replace Ben Wallace" in embed["fields"][0]["value"]
        assert "https://example.com/shapps" in embed["fields"][0]["value"]
        assert embed["footer"]["text"].startswith("Answered 0 minutes after the article")
        # The same article again, and a reprint of it: nothing more is posted.
        assert "unchanged 1" in await self.ingest_json(env, "shapps", SHAPPS)
        env.bot.follows.db.execute(  # as if the hour limit were over
            "UPDATE follows SET last_posted='2000-01-01T00:00:00+00:00'")
        assert "added 1" in await self.ingest_json(env, "reprint", SHAPPS,
                                                   "https://example.org/reprint")
        await asyncio.sleep(1.0)  # two scan rounds
        assert len(fake.posted[news]) == 1 and not fake.posted.get(fake.channels[GUILD_A])
        listed = await fake.command("follow", {}, sub="list", guild_id=GUILD_A, uid=77)
        text = await reply_text(env, listed)
        assert "1 of 2 standing questions" in text and "last answered" in text
        other = await fake.command("follow", {}, sub="list", guild_id=GUILD_B, uid=78)
        assert "No standing questions yet" in await reply_text(env, other)
        # A restart keeps the question: it lives in follows.sqlite3.
        from retrieval.follow import FollowStore

        again = FollowStore(env.core.data_dir / "follows.sqlite3")
        assert [f.question for f in again.list(str(GUILD_A))] == [QUESTION]
        again.close()

    async def test_limit_isolation_lost_channel_and_a_cli_ingest(self, discord_env, make_bot,
                                                                  tmp_path):
        from tests.conftest import write
        from tests.test_follow import QUESTION, SHAPPS

        fake, env = discord_env.fake, discord_env
        for q in (QUESTION, "Who leads the Royal Navy?"):
            i = await fake.command("follow", {"question": q}, sub="add", guild_id=GUILD_A,
                                   admin=True)
            assert (await reply_text(env, i)).startswith("Following #")
        full = await fake.command("follow", {"question": "Third?"}, sub="add",
                                  guild_id=GUILD_A, admin=True)
        assert "already follows 2 questions, the most allowed (2)" in \
            await reply_text(env, full)
        other = await fake.command("follow", {"id": 2}, sub="remove", guild_id=GUILD_B,
                                   admin=True)
        assert "has no standing question #2" in await reply_text(env, other)
        gone = await fake.command("follow", {"id": 2}, sub="remove", guild_id=GUILD_A,
                                  admin=True)
        assert await reply_text(env, gone) == "Stopped following #2."
        # The channel no longer lets the bot post; the article arrives through the CLI (another
        # Newsbot on the same data dir), which the bot finds on its next scan.
        fake.forbidden.add(fake.channels[GUILD_A])
        cli = make_bot(env.core.data_dir)
        path = write(tmp_path / "cli" / "shapps.json", json.dumps(
            {"id": "shapps", "title": "Shapps named", "text": SHAPPS,
             "published": "2023-08-31", "url": "https://example.com/shapps"}))
        await asyncio.to_thread(cli.ingest, [path])
        await fake.wait(lambda: fake.dms.get(42), 20, "a DM to whoever added the question")
        [dm] = fake.dms[42]
        assert "standing question #1 is paused" in dm["content"]
        assert dm["allowed_mentions"] == {"parse": []}
        [follow] = env.bot.follows.list(str(GUILD_A))
        assert follow.paused and not follow.last_posted
        # Paused: a second answering article neither posts nor tells anyone again.
        other_answer = SHAPPS.replace("Grant Shapps", "Penny Mordaunt")
        await asyncio.to_thread(cli.ingest, [write(tmp_path / "cli" / "m.json", json.dumps(
            {"id": "m", "title": "Mordaunt named", "text": other_answer,
             "published": "2023-08-31", "url": "https://example.com/m"}))])
        await asyncio.sleep(1.0)
        assert len(fake.dms[42]) == 1
        assert fake.rejected == []


# -- issue 22: slow hosts hold no slot, bad URLs are one line -----------------------------------
class TestSlowHostsHoldNoSlots:
    @pytest.fixture
    def extra_guilds(self):
        return [2001, 2002, 2003, 2004]

    @pytest.fixture
    def extra_settings(self):
        return {"fetch_timeout_s": 6}

    async def test_trickled_headers_leave_another_servers_upload_answered(
            self, discord_env, loopback_is_public):
        """Four servers' /ingest url: to a host trickling its headers held the fetch threads
        past the deadline, so a fifth server's two-line /ingest file: got no reply for 60 s."""
        from tests.web_stub import Route, WebStub

        web = WebStub().start()
        web.routes["/slow"] = Route(header_trickle_s=0.2)
        fake = discord_env.fake
        try:
            started = time.monotonic()
            slow = [await fake.command("ingest", {"url": web.url("/slow")}, guild_id=gid,
                                       admin=True) for gid in (GUILD_A, 2001, 2002, 2003)]
            again = await fake.command("ingest", {"url": web.url("/slow")}, guild_id=GUILD_A,
                                       admin=True)
            assert "already has a page being fetched" in await reply_text(discord_env, again)
            att = fake.upload("kiel.txt", b"Harbour ferry strike\nKiel. March 3. NEWSBOT "
                              b"SAMPLE WIRE - The ferry crews in Kiel went on strike.\n",
                              "text/plain")
            upload = await fake.command("ingest", {"file": att["id"]}, guild_id=2004,
                                        admin=True, resolved={"attachments": {att["id"]: att}})
            text = (await answered(discord_env, upload, 30))["content"]
            assert "added 1" in text and time.monotonic() - started < 5
            assert not any(i.followups for i in slow)  # still waiting on the slow host
            await fake.wait(lambda: all(i.followups for i in slow), 20, "the slow fetches")
            assert time.monotonic() - started < 12  # one deadline each, side by side
            for i in slow:
                assert "127.0.0.1 did not answer within 6 s" in i.followups[0]["content"]
        finally:
            web.stop()


async def test_bad_urls_from_discord_are_one_line_refusals(discord_env):
    """`/feeds add "http://[::1"` and an /ingest url: to port 99999 were "Something went
    wrong"; `/feeds add "http://"` was accepted."""
    fake = discord_env.fake
    replies = {}
    for value in ("http://", "http://[::1", "http://news.example:99999/feed",
                  "https://reuters.com@news.example/feed"):
        i = await fake.command("feeds", {"url": value}, sub="add", guild_id=GUILD_A,
                               admin=True)
        replies[value] = await reply_text(discord_env, i)
    assert replies == {
        "http://": "not a feed address: the URL has no host",
        "http://[::1": "not a feed address: not a valid URL (Invalid IPv6 URL)",
        "http://news.example:99999/feed": "not a feed address: not a valid URL (Port out of "
                                          "range 0-65535)",
        "https://reuters.com@news.example/feed": "not a feed address: URLs with a user name "
                                                 "or password (user@host) are refused",
    }
    assert discord_env.bot.feeds.list() == []
    i = await fake.command("ingest", {"url": "http://news.example:99999/a"}, guild_id=GUILD_A,
                           admin=True)
    assert await reply_text(discord_env, i) == (
        "`url` cannot be fetched: not a valid URL (Port out of range 0-65535).")


async def test_a_server_can_follow_only_so_many_feeds(discord_env):
    discord_env.bot.settings.feed_max_per_server = 2
    fake = discord_env.fake
    for n in range(2):
        i = await fake.command("feeds", {"url": f"https://news.example/{n}.xml"}, sub="add",
                               guild_id=GUILD_A, admin=True)
        assert (await reply_text(discord_env, i)).startswith("Following")
    i = await fake.command("feeds", {"url": "https://news.example/2.xml"}, sub="add",
                           guild_id=GUILD_A, admin=True)
    assert "already follows 2 feeds; the limit is 2" in await reply_text(discord_env, i)
    other = await fake.command("feeds", {"url": "https://news.example/2.xml"}, sub="add",
                               guild_id=GUILD_B, admin=True)
    assert (await reply_text(discord_env, other)).startswith("Following")


async def test_standing_questions_are_checked_while_a_feed_poll_runs(make_bot):
    """One slow feed stopped the standing-question scan too: they shared one thread."""
    import threading

    from bot.app import NewsBot

    core = make_bot()
    bot = NewsBot(core, core.settings)
    release = threading.Event()
    try:
        poll = asyncio.ensure_future(bot._run(bot._polls, release.wait, 20))
        assert await asyncio.wait_for(bot._run(bot._follows, bot.follows.list, "1"), 5) == []
        release.set()
        await poll
    finally:
        release.set()
        await bot.close()
