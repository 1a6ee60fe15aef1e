"""Libraries are namespaces of articles: `global` for the operator, one per Discord guild."""

from __future__ import annotations

import re

from retrieval.errors import NewsbotError

GLOBAL = "global"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_library(name: str) -> str:
    if not _NAME.match(name):
        raise NewsbotError(
            f"invalid library name {name!r}: use 1-64 letters, digits, '.', '_' or '-'"
        )
    return name


def guild_library(guild_id: int | None) -> str:
    return f"guild-{guild_id}" if guild_id else GLOBAL


def visible_libraries(guild_id: int | None) -> list[str]:
    """A guild sees its own library and the operator's; a DM sees only the operator's."""
    return [GLOBAL, guild_library(guild_id)] if guild_id else [GLOBAL]
