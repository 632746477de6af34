"""Docs generated from code are checked for drift.

``docs/cli.md`` is the ``--help`` of every command. Regenerate it with
``FACETAGS_UPDATE_DOCS=1 python -m pytest tests/test_docs.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from facetags.cli import cli

CLI_DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"

HEADER = """# Command line

Generated from the code (`FACETAGS_UPDATE_DOCS=1 python -m pytest tests/test_docs.py`); a
test fails when this page and `facetags --help` disagree. Data goes to stdout (`--json` where
offered), progress and errors to stderr; a failure is one line `facetags: error: ...` and a
non-zero exit status.
"""


def _walk(command: click.Command, path: list[str], parent: click.Context | None) -> list[str]:
    # The command's own context_settings (e.g. -h as well as --help), as a real run applies them:
    # click caches each command's help option once built, so the doc must match a real run's.
    settings = {"terminal_width": 100, "max_content_width": 100, **command.context_settings}
    ctx = click.Context(command, info_name=path[-1], parent=parent, **settings)
    title = " ".join(path)
    parts = [f"\n## `{title}`\n\n```text\n{command.get_help(ctx).rstrip()}\n```\n"]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                parts += _walk(sub, [*path, name], ctx)
    return parts


def render() -> str:
    return HEADER + "".join(_walk(cli, ["facetags"], None))


def test_cli_doc_matches_the_code() -> None:
    text = render()
    if os.environ.get("FACETAGS_UPDATE_DOCS"):
        CLI_DOC.write_text(text, encoding="utf-8")
    assert CLI_DOC.is_file(), "docs/cli.md is missing: run with FACETAGS_UPDATE_DOCS=1"
    assert CLI_DOC.read_text(encoding="utf-8") == text, (
        "docs/cli.md is out of date: run FACETAGS_UPDATE_DOCS=1 python -m pytest tests/test_docs.py"
    )
