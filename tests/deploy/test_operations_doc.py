"""docs/OPERATIONS.md stays true: its settings, CLI commands, options and paths exist.

The guide is commands first; a renamed option or file would leave a procedure that fails
in the middle of an incident. So: every setting the service has is documented; every
`customers ...` command line it shows names a real command and only real options; every
repository path it names exists; and it answers each point of the issue under a heading.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main

from infrastructure.settings import ENV_PREFIX, Settings
from workers.__main__ import app

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "OPERATIONS.md"


def code(text: str) -> str:
    """The fenced blocks and inline code spans of a Markdown text."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
    return "\n".join(blocks + spans)


def test_every_setting_is_documented() -> None:
    text = GUIDE.read_text()
    missing = [
        f"{ENV_PREFIX}{name.upper()}"
        for name in Settings.model_fields
        if f"{ENV_PREFIX}{name.upper()}" not in text
    ]
    assert missing == []


def test_every_customers_command_line_is_real() -> None:
    cli: Any = typer.main.get_command(app)
    seen = 0
    for line in code(GUIDE.read_text()).splitlines():
        for match in re.finditer(r"\bcustomers ([a-z][a-z-]*)((?: [a-z][a-z-]*)?)(.*)", line):
            # The command's own arguments: up to a pipe, a redirection or the next command.
            name, rest = match.group(1), re.split(r"\s(?:\||;|&&|>)", match.group(3))[0]
            if name not in cli.commands:
                continue  # `-U customers -d customers`, "customers.crm_events"...
            command = cli.commands[name]
            if hasattr(command, "commands"):  # a group: `customers projections rebuild`
                sub = match.group(2).strip()
                assert sub in command.commands, f"customers {name} {sub}: no such command"
                command = command.commands[sub]
            options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest):
                assert option in options, f"{line.strip()}: {option} is not an option"
            seen += 1
    assert seen >= 5, "the guide shows the CLI at work"


def test_every_path_it_names_exists() -> None:
    text = GUIDE.read_text()
    paths = set(re.findall(r"\b((?:deploy|docs|src|tests)/[\w./-]*\w)", text))
    assert paths
    for path in sorted(paths):
        if "<" in path or "NNNN" in path or path == "deploy/.env":  # .env: the operator's own
            continue
        if re.fullmatch(r"deploy/(gateway|worker-[a-z]+)", path):  # kubectl's deploy/NAME
            continue
        assert (ROOT / path).exists(), f"{path} does not exist"


def test_it_answers_each_point_of_the_issue() -> None:
    headings = re.findall(r"^#+ (.+)$", GUIDE.read_text(), re.MULTILINE)
    for wanted in (
        "Configuration",
        "Migrations and upgrades",
        "Backups and point-in-time recovery",
        "Rebuilding a read model in production",
        "Capacity of one primary",
        "Past one primary",
    ):
        assert any(wanted in heading for heading in headings), wanted
    text = GUIDE.read_text()
    for command in ("pg_basebackup", "recovery_target_time", "projections rebuild", "upcast_v1_v2"):
        assert command in text, command
