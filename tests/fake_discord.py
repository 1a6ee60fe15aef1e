"""A small fake Discord on 127.0.0.1 that an unmodified discord.py client talks to: REST routes
plus a zlib-stream websocket gateway. It enforces the rules a real bot trips over: no callback
within 3 s is "Unknown interaction", a second acknowledgement is refused, and message payloads
over Discord's limits are rejected like Discord rejects them."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import re
import secrets
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

DISCORD_EPOCH_MS = 1420070400000
APP_ID = 900000000000000001
BOT_ID = 900000000000000002
GOOD_TOKEN = "test.bot.token"
EVERYONE = "0"
ADMIN_PERMS = str(1 << 5 | 1 << 3)  # MANAGE_GUILD | ADMINISTRATOR
MEMBER_PERMS = str(1 << 10 | 1 << 11 | 1 << 31)  # VIEW_CHANNEL | SEND_MESSAGES | USE_APP_COMMANDS
_ids = itertools.count(1)


def snowflake() -> int:
    return ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(_ids) % 4096)


def user(uid: int, name: str, bot: bool = False) -> dict[str, Any]:
    return {"id": str(uid), "username": name, "discriminator": "0", "global_name": name,
            "avatar": None, "bot": bot, "public_flags": 0}


BOT_USER = user(BOT_ID, "newsbot", bot=True)


def json_response(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    # Exactly "application/json": discord.py does not parse "application/json; charset=utf-8".
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json", **(headers or {})})


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def limit_problems(payload: dict[str, Any]) -> list[str]:
    """What Discord would reject in a message payload (content, embeds, components)."""
    problems = []
    if utf16(payload.get("content") or "") > 2000:
        problems.append("content over 2000")
    embeds = payload.get("embeds") or []
    if len(embeds) > 10:
        problems.append("more than 10 embeds")
    total = 0
    for e in embeds:
        title, desc = e.get("title") or "", e.get("description") or ""
        footer = (e.get("footer") or {}).get("text") or ""
        author = (e.get("author") or {}).get("name") or ""
        fields = e.get("fields") or []
        if utf16(title) > 256:
            problems.append("embed title over 256")
        if utf16(desc) > 4096:
            problems.append("embed description over 4096")
        if len(fields) > 25:
            problems.append("more than 25 fields")
        for f in fields:
            if utf16(f.get("name") or "") > 256 or not f.get("name"):
                problems.append("field name empty or over 256")
            if utf16(f.get("value") or "") > 1024 or not f.get("value"):
                problems.append("field value empty or over 1024")
        if utf16(footer) > 2048:
            problems.append("footer over 2048")
        total += utf16(title) + utf16(desc) + utf16(footer) + utf16(author) + sum(
            utf16(f.get("name") or "") + utf16(f.get("value") or "") for f in fields)
    if total > 6000:
        problems.append(f"embeds total {total} over 6000")
    return problems


def embed_texts(payload: dict[str, Any]) -> list[str]:
    """Every string Discord shows from a message's embeds."""
    out = []
    for e in payload.get("embeds") or []:
        out += [e.get("title") or "", e.get("description") or "",
                (e.get("footer") or {}).get("text") or "", (e.get("author") or {}).get("name")
                or ""]
        out += [x for f in e.get("fields") or [] for x in (f.get("name"), f.get("value")) if x]
    return out


def masked_links(text: str) -> list[tuple[str, str]]:
    """(label, target) of the masked links [label](http...) Discord would render in ``text``:
    brackets that no backslash escapes, the label's closing one followed by an http(s) URL."""
    out, opened, i = [], None, 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            opened = i
        elif c == "]" and opened is not None and (
                m := re.match(r"\(\s*<?(https?://[^\s)>]+)", text[i + 1:])):
            out.append((text[opened + 1 : i], m.group(1)))
            opened = None
        i += 1
    return out


@dataclass
class Interaction:
    id: int
    token: str
    type: int
    created: float
    guild_id: int | None
    payload: dict[str, Any]
    acked_at: float | None = None
    callback: dict[str, Any] | None = None
    original: dict[str, Any] | None = None
    followups: list[dict[str, Any]] = field(default_factory=list)
    followup_at: list[float] = field(default_factory=list)
    deleted_original: bool = False
    edits: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # PATCH @original

    @property
    def defer_s(self) -> float | None:
        return None if self.acked_at is None else self.acked_at - self.created

    @property
    def answered_s(self) -> float | None:
        return self.followup_at[0] - self.created if self.followup_at else None


class FakeDiscord:
    def __init__(self) -> None:
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_get("/", self.gateway)
        self.app.router.add_route("*", "/api/v10/{path:.*}", self.rest)
        self.app.router.add_get("/attachments/{aid}/{name}", self.attachment)
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.guilds: dict[int, dict[str, Any]] = {}
        self.channels: dict[int, int] = {}  # guild -> channel
        self.more_channels: dict[int, int] = {}  # channel -> guild, for add_channel's
        self.forbidden: set[int] = set()  # channels where the bot may not post (403)
        self.dm_channels: dict[int, int] = {}  # DM channel -> the user it reaches
        self.dms: dict[int, list[dict[str, Any]]] = {}  # user id -> direct messages sent
        self.threads: dict[int, dict[str, Any]] = {}  # thread id -> thread channel
        self.posted: dict[int, list[dict[str, Any]]] = {}  # channel id -> messages the bot sent
        self.synced: dict[str, list[dict[str, Any]]] = {}  # "global" or guild id -> commands
        self.interactions: dict[int, Interaction] = {}
        self.messages: dict[int, dict[str, Any]] = {}
        self.files: dict[int, tuple[str, bytes, str]] = {}
        self.rejected: list[tuple[str, list[str]]] = []  # (route, problems) refused for limits
        self.errors: list[tuple[str, int, dict]] = []  # error replies sent (route, status, body)
        self.rate_limits: dict[str, int] = {}  # route pattern -> 429s still to send
        self.rate_limited: list[str] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.identifies = 0
        self.resumes = 0
        self.seq = 0
        self.session_id = secrets.token_hex(8)
        self.ready = asyncio.Event()
        self.resumed = asyncio.Event()
        self._compress: dict[int, Any] = {}

    # -- lifecycle
    async def start(self) -> None:
        self.runner = web.AppRunner(self.app, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self.runner:
            await self.runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def add_guild(self, gid: int, name: str, roles: list[dict] | None = None) -> None:
        channel = snowflake()
        self.channels[gid] = channel
        everyone = {"id": str(gid), "name": "@everyone", "permissions": MEMBER_PERMS,
                    "position": 0, "color": 0, "colors": {"primary_color": 0}, "hoist": False,
                    "managed": False, "mentionable": False, "flags": 0}
        self.guilds[gid] = {
            "id": str(gid), "name": name, "icon": None, "owner_id": "1", "features": [],
            "roles": [everyone, *(roles or [])], "emojis": [], "stickers": [],
            "channels": [{"id": str(channel), "type": 0, "name": "general", "position": 0,
                          "guild_id": str(gid), "permission_overwrites": [], "nsfw": False,
                          "parent_id": None, "topic": None}],
            "threads": [], "members": [], "member_count": 3, "large": False,
            "unavailable": False, "voice_states": [], "presences": [], "stage_instances": [],
            "guild_scheduled_events": [], "soundboard_sounds": [], "joined_at":
                dt.datetime.now(dt.UTC).isoformat(), "verification_level": 0,
            "default_message_notifications": 0, "explicit_content_filter": 0, "mfa_level": 0,
            "nsfw_level": 0, "premium_tier": 0, "system_channel_flags": 0,
            "preferred_locale": "en-US", "afk_timeout": 300, "max_members": 1000,
        }

    async def add_channel(self, gid: int, name: str) -> int:
        """Another text channel in a guild; a connected bot hears of it (CHANNEL_CREATE)."""
        channel = snowflake()
        data = {"id": str(channel), "type": 0, "name": name, "position": 1,
                "guild_id": str(gid), "permission_overwrites": [], "nsfw": False,
                "parent_id": None, "topic": None}
        self.guilds[gid]["channels"].append(data)
        self.more_channels[channel] = gid
        if self.sockets:
            await self.dispatch("CHANNEL_CREATE", data)
        return channel

    def channel_option(self, channel_id: int) -> dict[str, Any]:
        """``resolved`` for a channel option, as Discord sends it with the interaction."""
        gid = self._guild_of(channel_id)
        data = next(c for c in self.guilds[gid]["channels"] if c["id"] == str(channel_id))
        return {"channels": {str(channel_id): {**data, "permissions": str(ADMIN_PERMS)}}}

    # -- gateway
    async def _send(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        comp = self._compress.get(id(ws))
        if comp is None:
            await ws.send_str(data.decode())
        else:
            await ws.send_bytes(comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH))

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        self.seq += 1
        ws = self.sockets[-1]
        await self._send(ws, {"op": 0, "t": event, "s": self.seq, "d": data})

    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        if request.query.get("compress") == "zlib-stream":
            self._compress[id(ws)] = zlib.compressobj()
        self.sockets.append(ws)
        await self._send(ws, {"op": 10, "d": {"heartbeat_interval": 41250}, "s": None,
                              "t": None})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            op = json.loads(msg.data)
            if op["op"] == 1:
                await self._send(ws, {"op": 11, "d": None, "s": None, "t": None})
            elif op["op"] == 2:
                self.identifies += 1
                token = op["d"]["token"]
                await self.dispatch("READY", {
                    "v": 10, "user": BOT_USER, "session_id": self.session_id,
                    "resume_gateway_url": self.gateway_url, "private_channels": [],
                    "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds],
                    "application": {"id": str(APP_ID), "flags": 0},
                    "_trace": [], "auth_token_ok": token == GOOD_TOKEN,
                    # Discord echoes the shard a sharded client identified as.
                    **({"shard": op["d"]["shard"]} if op["d"].get("shard") else {})})
                for g in self.guilds.values():
                    await self.dispatch("GUILD_CREATE", g)
                self.ready.set()
            elif op["op"] == 6:
                self.resumes += 1
                await self.dispatch("RESUMED", {"_trace": []})
                self.resumed.set()
        if ws in self.sockets:
            self.sockets.remove(ws)
        return ws

    async def reconnect(self) -> None:
        """Ask the client to reconnect (op 7), as Discord does; it must RESUME."""
        self.resumed.clear()
        await self._send(self.sockets[-1], {"op": 7, "d": None, "s": None, "t": None})

    # -- interactions
    def _member(self, uid: int, name: str, admin: bool, roles: list[str]) -> dict[str, Any]:
        return {"user": user(uid, name), "roles": roles, "nick": None, "avatar": None,
                "joined_at": "2022-01-01T00:00:00+00:00", "deaf": False, "mute": False,
                "flags": 0, "pending": False, "permissions": ADMIN_PERMS if admin
                else MEMBER_PERMS, "communication_disabled_until": None}

    def _envelope(self, type_: int, data: dict[str, Any], guild_id: int | None, uid: int,
                  admin: bool, roles: list[str]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(snowflake()), "application_id": str(APP_ID), "type": type_,
            "data": data, "token": secrets.token_urlsafe(24), "version": 1,
            "locale": "en-US", "app_permissions": ADMIN_PERMS, "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild_id:
            channel = self.channels[guild_id]
            payload.update(
                guild_id=str(guild_id), guild_locale="en-US", channel_id=str(channel),
                guild={"id": str(guild_id), "locale": "en-US", "features": []},
                channel={"id": str(channel), "type": 0, "guild_id": str(guild_id),
                         "name": "general", "position": 0, "permission_overwrites": [],
                         "nsfw": False, "parent_id": None},
                member=self._member(uid, f"user{uid}", admin, roles), context=0,
                authorizing_integration_owners={"0": str(guild_id)})
        else:
            dm = snowflake()
            payload.update(user=user(uid, f"user{uid}"), channel_id=str(dm),
                           channel={"id": str(dm), "type": 1,
                                    "recipients": [user(uid, f"user{uid}")]},
                           context=1, authorizing_integration_owners={"1": str(uid)})
        return payload

    def _command_id(self, name: str, guild_id: int | None) -> str:
        # The fake does not model where a command is visible: a DM may use a guild's copy.
        for key in (str(guild_id), "global", *self.synced):
            for c in self.synced.get(key, []):
                if c["name"] == name:
                    return c["id"]
        raise KeyError(f"command {name} was never synced")

    async def _send_interaction(self, payload: dict[str, Any]) -> Interaction:
        i = Interaction(int(payload["id"]), payload["token"], payload["type"],
                        time.monotonic(), int(payload.get("guild_id") or 0) or None, payload)
        self.interactions[i.id] = i
        await self.dispatch("INTERACTION_CREATE", payload)
        return i

    async def command(self, name: str, options: dict[str, Any] | None = None, *,
                      guild_id: int | None = None, uid: int = 42, admin: bool = False,
                      roles: list[str] | None = None, focused: str | None = None,
                      resolved: dict[str, Any] | None = None,
                      channel_id: int | None = None, sub: str | None = None) -> Interaction:
        """Send a slash command (type 2), or its autocomplete (type 4) when ``focused``; with
        ``channel_id``, from that channel or thread."""
        opts = []
        for k, v in (options or {}).items():
            kind = 11 if k == "file" else 7 if k == "channel" else \
                4 if isinstance(v, int) else 3
            opt: dict[str, Any] = {"name": k, "type": kind, "value": str(v) if kind == 7 else v}
            if k == focused:
                opt["focused"] = True
            opts.append(opt)
        if sub:  # a subcommand of a group: its options nest inside it
            opts = [{"name": sub, "type": 1, "options": opts}]
        data: dict[str, Any] = {"id": self._command_id(name, guild_id), "name": name,
                                "type": 1, "options": opts}
        if guild_id:
            data["guild_id"] = str(guild_id)
        if resolved:
            data["resolved"] = resolved
        payload = self._envelope(4 if focused else 2, data, guild_id, uid, admin, roles or [])
        if channel_id in self.threads:
            payload.update(channel_id=str(channel_id), channel=self.threads[channel_id])
        return await self._send_interaction(payload)

    def member_message(self, guild_id: int, text: str, uid: int = 42,
                       attachments: list[dict[str, Any]] | None = None, *,
                       channel_id: int | None = None) -> dict[str, Any]:
        """A member's message in the guild's channel (or ``channel_id``), as Discord sends it
        in MESSAGE_CREATE or resolves it for a message command."""
        return {"id": str(snowflake()), "channel_id": str(channel_id or self.channels[guild_id]),
                "guild_id": str(guild_id), "author": user(uid, f"user{uid}"),
                "member": self._member(uid, f"user{uid}", False, []), "content": text,
                "timestamp": dt.datetime.now(dt.UTC).isoformat(), "edited_timestamp": None,
                "tts": False, "mention_everyone": False, "mentions": [], "mention_roles": [],
                "attachments": attachments or [], "embeds": [], "pinned": False, "type": 0,
                "flags": 0, "components": []}

    async def message_command(self, name: str, message: dict[str, Any], *, guild_id: int,
                              uid: int = 42) -> Interaction:
        """Run a message context-menu command (type 3) on ``message``: Discord sends the
        target's id and the whole message, content included, in ``resolved``."""
        data = {"id": self._command_id(name, guild_id), "name": name, "type": 3,
                "target_id": message["id"], "guild_id": str(guild_id),
                "resolved": {"messages": {message["id"]: message}}}
        return await self._send_interaction(self._envelope(2, data, guild_id, uid, False, []))

    async def click(self, message: dict[str, Any], label: str | None = None, *,
                    emoji: str | None = None, uid: int = 42,
                    guild_id: int | None = None) -> Interaction:
        """Click a button on a message: the payload carries that message, as Discord's does."""
        buttons = [c for row in message.get("components", []) for c in row["components"]]
        button = next(b for b in buttons if (label and b.get("label") == label)
                      or (emoji and (b.get("emoji") or {}).get("name") == emoji))
        data = {"custom_id": button["custom_id"], "component_type": 2}
        payload = self._envelope(3, data, guild_id, uid, False, [])
        payload["message"] = message
        return await self._send_interaction(payload)

    def upload(self, name: str, data: bytes, content_type: str | None) -> dict[str, Any]:
        """An attachment the fake serves over loopback, as a resolved option of /ingest."""
        aid = snowflake()
        self.files[aid] = (name, data, content_type or "")
        att = {"id": str(aid), "filename": name, "size": len(data),
               "url": f"http://127.0.0.1:{self.port}/attachments/{aid}/{name}",
               "proxy_url": f"http://127.0.0.1:{self.port}/attachments/{aid}/{name}"}
        if content_type:
            att["content_type"] = content_type
        return att

    async def attachment(self, request: web.Request) -> web.Response:
        _, data, ctype = self.files[int(request.match_info["aid"])]
        return web.Response(body=data, headers={"Content-Type": ctype or "text/plain"})

    def _message(self, body: dict[str, Any], interaction: Interaction | None,
                 flags: int = 0) -> dict[str, Any]:
        mid = snowflake()
        msg = {"id": str(mid), "type": 20 if interaction else 0,
               "channel_id": str(interaction.payload.get("channel_id") if interaction
                                 and interaction.guild_id else 1),
               "author": BOT_USER, "content": body.get("content") or "",
               "timestamp": dt.datetime.now(dt.UTC).isoformat(), "edited_timestamp": None,
               "tts": False, "mention_everyone": False, "mentions": [], "mention_roles": [],
               "attachments": [], "embeds": body.get("embeds") or [], "pinned": False,
               "flags": flags | (body.get("flags") or 0),
               "components": body.get("components") or [], "application_id": str(APP_ID),
               "webhook_id": str(APP_ID), "allowed_mentions": body.get("allowed_mentions")}
        if interaction and interaction.guild_id:
            msg["guild_id"] = str(interaction.guild_id)
        self.messages[mid] = msg
        return msg

    def _error(self, route: str, status: int, code: int, message: str) -> web.Response:
        body = {"code": code, "message": message}
        self.errors.append((route, status, body))
        return json_response(body, status)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    return json.loads(await part.text())
            return {}
        raw = await request.read()
        return json.loads(raw) if raw else {}

    async def rest(self, request: web.Request) -> web.Response:
        path, method = request.match_info["path"], request.method
        route = f"{method} /{path}"
        for pattern, left in list(self.rate_limits.items()):
            if left and re.fullmatch(pattern, route):
                self.rate_limits[pattern] = left - 1
                self.rate_limited.append(route)
                # discord.py retries a 429 only when it carries Via and a JSON retry_after.
                return json_response({"message": "You are being rate limited.",
                                      "retry_after": 0.05, "global": False}, 429,
                                     {"Via": "1.1 google", "X-RateLimit-Scope": "user"})
        auth = request.headers.get("Authorization", "")
        if path.startswith(("users/", "oauth2/", "applications/")) and auth != f"Bot {GOOD_TOKEN}":
            return self._error(route, 401, 0, "401: Unauthorized")
        if path == "users/@me":
            return json_response(BOT_USER)
        if path == "users/@me/channels" and method == "POST":
            uid = int((await self._body(request))["recipient_id"])
            dm = snowflake()
            self.dm_channels[dm] = uid
            return json_response({"id": str(dm), "type": 1, "last_message_id": None,
                                  "recipients": [user(uid, f"user{uid}")]})
        if path == "oauth2/applications/@me":
            return json_response({"id": str(APP_ID), "name": "newsbot", "description": "",
                                  "icon": None, "bot_public": True, "flags": 0,
                                  "bot_require_code_grant": False, "verify_key": "0" * 64,
                                  "owner": user(1, "owner"), "team": None, "summary": "",
                                  "rpc_origins": []})
        if path == "gateway/bot" or path == "gateway":
            return json_response({"url": self.gateway_url, "shards": 1,
                                  "session_start_limit": {"total": 1000, "remaining": 1000,
                                                          "reset_after": 0,
                                                          "max_concurrency": 1}})
        m = re.fullmatch(r"applications/(\d+)(?:/guilds/(\d+))?/commands", path)
        if m and method == "PUT":
            key = m.group(2) or "global"
            commands = await self._body(request)
            for c in commands:
                c.update(id=str(snowflake()), application_id=str(APP_ID), version="1")
                c.setdefault("type", 1)
                c.setdefault("description", "")  # Discord returns "" for a message command
            self.synced[key] = commands
            return json_response(commands)
        m = re.fullmatch(r"interactions/(\d+)/([^/]+)/callback", path)
        if m and method == "POST":
            return await self._callback(route, int(m.group(1)), m.group(2),
                                        await self._body(request))
        m = re.fullmatch(r"channels/(\d+)/messages/(\d+)/threads", path)
        if m and method == "POST":
            return await self._start_thread(int(m.group(1)), int(m.group(2)),
                                            await self._body(request))
        m = re.fullmatch(r"channels/(\d+)/messages", path)
        if m and method == "POST":
            return await self._post(route, int(m.group(1)), await self._body(request))
        if re.fullmatch(r"channels/(\d+)/typing", path) and method == "POST":
            return web.Response(status=204)
        m = re.fullmatch(r"webhooks/(\d+)/([^/]+)(?:/messages/(@original|\d+))?", path)
        if m:
            return await self._webhook(route, method, m.group(2), m.group(3), request)
        return self._error(route, 404, 0, f"404: not in the fake ({route})")

    def _guild_of(self, channel_id: int) -> int:
        if channel_id in self.threads:
            return int(self.threads[channel_id]["guild_id"])
        if channel_id in self.more_channels:
            return self.more_channels[channel_id]
        return next(g for g, c in self.channels.items() if c == channel_id)

    async def _start_thread(self, channel_id: int, message_id: int,
                            body: dict[str, Any]) -> web.Response:
        """A public thread started from a message; its id is the message's, as on Discord."""
        if channel_id in self.threads or message_id not in self.messages:
            return self._error(f"POST /channels/{channel_id}/threads", 400, 50024,
                               "Cannot execute action on this channel type")
        guild_id = self._guild_of(channel_id)
        thread = {"id": str(message_id), "guild_id": str(guild_id), "parent_id": str(channel_id),
                  "owner_id": str(BOT_ID), "name": body.get("name", ""), "type": 11,
                  "last_message_id": None, "rate_limit_per_user": 0, "message_count": 0,
                  "member_count": 1, "total_message_sent": 0, "flags": 0,
                  "thread_metadata": {"archived": False, "auto_archive_duration":
                                      body.get("auto_archive_duration", 1440),
                                      "archive_timestamp": dt.datetime.now(dt.UTC).isoformat(),
                                      "locked": False}}
        if not thread["name"] or utf16(thread["name"]) > 100:
            return self._error("POST threads", 400, 50035, "Invalid Form Body: name")
        self.threads[message_id] = thread
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return json_response(thread)

    async def _post(self, route: str, channel_id: int, body: dict[str, Any]) -> web.Response:
        if problems := limit_problems(body):
            self.rejected.append((route, problems))
            return self._error(route, 400, 50035, "Invalid Form Body: " + "; ".join(problems))
        if channel_id in self.forbidden:
            return self._error(route, 403, 50013, "Missing Permissions")
        msg = self._message(body, None)
        if channel_id in self.dm_channels:
            msg.update(channel_id=str(channel_id))
            self.dms.setdefault(self.dm_channels[channel_id], []).append(msg)
            return json_response(msg)
        if not any(channel_id in m for m in (self.threads, self.more_channels)) and \
                channel_id not in self.channels.values():
            return self._error(route, 404, 10003, "Unknown Channel")
        msg.update(channel_id=str(channel_id), guild_id=str(self._guild_of(channel_id)))
        if body.get("message_reference"):  # Discord leaves it out of a message that isn't a reply
            msg["message_reference"] = body["message_reference"]
        self.posted.setdefault(channel_id, []).append(msg)
        return json_response(msg)

    async def mention(self, channel_id: int, text: str, uid: int = 42) -> dict[str, Any]:
        """A member's message that @mentions the bot (Discord sends its content to the bot even
        without the message-content intent)."""
        msg = self.member_message(self._guild_of(channel_id), f"<@{BOT_ID}> {text}", uid,
                                  channel_id=channel_id)
        msg["mentions"] = [BOT_USER]
        await self.dispatch("MESSAGE_CREATE", msg)
        return msg

    def _by_token(self, token: str) -> Interaction | None:
        return next((i for i in self.interactions.values() if i.token == token), None)

    async def _callback(self, route: str, iid: int, token: str,
                        body: dict[str, Any]) -> web.Response:
        i = self.interactions.get(iid)
        now = time.monotonic()
        if i is None or i.token != token or now - i.created > 3.0:
            return self._error(route, 404, 10062, "Unknown interaction")
        if i.acked_at is not None:
            return self._error(route, 400, 40060, "Interaction has already been acknowledged.")
        kind = body["type"]
        data = body.get("data") or {}
        if kind in (4, 7) and (problems := limit_problems(data)):
            self.rejected.append((route, problems))
            return self._error(route, 400, 50035, "Invalid Form Body: " + "; ".join(problems))
        i.acked_at, i.callback = now, body
        flags = data.get("flags") or 0
        resource: dict[str, Any] = {"type": kind}
        if kind in (4, 5):
            i.original = self._message(data, i, flags | (128 if kind == 5 else 0))
            resource["message"] = i.original
        elif kind == 7:
            msg = i.payload["message"]
            msg.update({k: v for k, v in data.items() if k in ("content", "embeds",
                                                              "components")})
            resource["message"] = msg
        return json_response({"interaction": {
            "id": str(iid), "type": i.type, "response_message_id": i.original and
            i.original["id"], "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(flags & 64)}, "resource": resource})

    async def _webhook(self, route: str, method: str, token: str, which: str | None,
                       request: web.Request) -> web.Response:
        i = self._by_token(token)
        if i is None or i.acked_at is None:
            return self._error(route, 404, 10015, "Unknown Webhook")
        if method == "DELETE":
            i.deleted_original = True
            return web.Response(status=204)
        body = await self._body(request)
        if problems := limit_problems(body):
            self.rejected.append((route, problems))
            return self._error(route, 400, 50035, "Invalid Form Body: " + "; ".join(problems))
        if method == "POST":
            msg = self._message(body, i)
            i.followups.append(msg)
            i.followup_at.append(time.monotonic())
            return json_response(msg)
        if method == "PATCH" and which == "@original" and i.original is not None:
            i.edits.append((time.monotonic(), body))
            i.original.update({k: v for k, v in body.items() if k in ("content", "embeds",
                                                                     "components")})
            return json_response(i.original)
        return self._error(route, 404, 10008, "Unknown Message")

    async def wait(self, predicate, timeout: float = 20.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.01)
