"""The documentation agrees with the code: the README's two commands exist and run as
scripts, its settings table and `.env.example` name exactly the settings of
`newsbot/settings.py` (with the same defaults), and relative links lead somewhere."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic_core import PydanticUndefined

from newsbot.settings import Settings
from tests.conftest import ROOT

README = ROOT / "README.md"
ENV_NAME = re.compile(r"\b((?:NEWSBOT|DISCORD|CHROMA)_[A-Z0-9_]+)\b")
# Read from the environment by load_settings itself, before the settings exist.
NOT_FIELDS = {"NEWSBOT_ENV_FILE"}


def env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return alias.choices[0] if alias is not None else f"NEWSBOT_{field.upper()}"


def settings_by_env() -> dict[str, str]:
    return {env_name(f): f for f in Settings.model_fields}


def section(markdown: str, title: str) -> str:
    """The text under a level-2 heading, up to the next one."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, re.S | re.M)
    assert match, f"no section '## {title}'"
    return match.group(1)


def settings_table(markdown: str) -> list[tuple[list[str], list[str | None]]]:
    """Each row of the README's settings table: its variables, and its default cell split
    by " / " into one value per variable (a `literal`, or None for words like "(none)")."""
    rows = []
    for line in section(markdown, "Settings").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 3 or not ENV_NAME.search(cells[0]):
            continue
        names = ENV_NAME.findall(cells[0])
        defaults = [m.group(1) if (m := re.fullmatch(r"`([^`]*)`", d.strip())) else None
                    for d in cells[1].split(" / ")]
        rows.append((names, defaults))
    return rows


def same_default(documented: str, actual: object) -> bool:
    if isinstance(actual, bool):
        return documented.lower() in (("1", "true") if actual else ("0", "false"))
    if isinstance(actual, int | float):
        try:
            return float(documented) == float(actual)
        except ValueError:
            return False
    return documented == str(actual)


def test_the_readmes_two_commands_are_executable_scripts():
    block = re.search(r"```bash\n(.*?)```", section(README.read_text(encoding="utf-8"),
                                                    "Two commands"), re.S)
    assert block, "the Two commands section has no bash block"
    commands = [line.split()[0] for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["scripts/demo", "scripts/test"]
    for command in commands:
        path = ROOT / command
        assert path.is_file() and os.access(path, os.X_OK), f"{command} is not executable"
        assert path.read_text(encoding="utf-8").startswith("#!"), f"{command} has no shebang"
    # CI runs exactly the README's test command.
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme_table_and_nothing_else_is():
    documented = {n for names, _ in settings_table(README.read_text(encoding="utf-8"))
                  for n in names}
    actual = set(settings_by_env())
    assert not actual - documented, f"settings missing from the README: {actual - documented}"
    assert not documented - actual - NOT_FIELDS, \
        f"README documents settings the code lacks: {documented - actual - NOT_FIELDS}"


def test_the_readme_tables_defaults_are_the_codes():
    fields = settings_by_env()
    checked = 0
    for names, defaults in settings_table(README.read_text(encoding="utf-8")):
        if len(defaults) != len(names):
            defaults = [None] * len(names)  # one description for several variables
        for name, documented in zip(names, defaults, strict=True):
            info = Settings.model_fields.get(fields.get(name, ""))
            if documented is None or info is None or info.default in (None, "",
                                                                        PydanticUndefined):
                continue  # "(none)", "calibrated", a computed default
            assert same_default(documented, info.default), \
                f"README says {name} defaults to {documented!r}; the code says {info.default!r}"
            checked += 1
    assert checked >= 30  # the table's literal defaults are really being compared


def test_every_setting_is_in_env_example_and_nothing_else_is():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=",
                                (ROOT / ".env.example").read_text(encoding="utf-8"),
                                re.MULTILINE))
    actual = set(settings_by_env())
    assert not actual - documented, f"missing from .env.example: {actual - documented}"
    assert not documented - actual - NOT_FIELDS, \
        f".env.example documents settings the code lacks: {documented - actual - NOT_FIELDS}"


def test_settings_table_parser_reads_shared_rows():
    text = ("## Settings\n\n| variable | default | meaning |\n|---|---|---|\n"
            "| `NEWSBOT_A` / `NEWSBOT_B` | `5` / (none) | x \\| y |\n"
            "| `CHROMA_HOST`, `CHROMA_PORT` | (embedded) | z |\n\n"
            "## Next\n| `NEWSBOT_C` | `1` | w |\n")
    assert settings_table(text) == [(["NEWSBOT_A", "NEWSBOT_B"], ["5", None]),
                                    (["CHROMA_HOST", "CHROMA_PORT"], [None])]
    assert same_default("0", False) and same_default("0.60", 0.6)
    assert not same_default("8", 5) and not same_default("1", False)


def markdown_files() -> list[Path]:
    return [README, ROOT / "SECURITY.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files(path):
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)  # a `[text](url)` in a code span is no link
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        assert (path.parent / target.split("#")[0]).exists(), f"{path.name}: {target}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_speak_of_findings_not_of_who_found_them_when(path):
    assert not re.search(r"\bsessions?\b", path.read_text(encoding="utf-8"), re.I)


def test_readme_stays_a_short_guide():
    assert README.stat().st_size <= 20 * 1024, "README over 20 KB: move detail to docs/"
