"""Docs generated from code are checked for drift.

``docs/cli.md`` is the ``--help`` of every command. Regenerate it with
``FACETAGS_UPDATE_DOCS=1 python -m pytest tests/test_docs.py``.
"""

from __future__ import annotations

import os
import re
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


# --- the user docs: short, current, linked -------------------------------------------------------

ROOT = CLI_DOC.parents[1]
MODEL_CARD = ROOT / "models" / "facetags-mobilenet-v1.md"

#: Words of a lab notebook, not of user docs: the history lives in CHANGELOG.md and the training log.
HISTORY = re.compile(
    r"\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth"
    r"|\d+(?:st|nd|rd|th)|this|that|the same|previous|next|last|later|earlier) sessions?\b"
    r"|\bsession \d+\b|\bprevious file\b|\bthe file before\b|\bshipped before\b|\btoday's file\b"
    r"|\b(?:earlier|slower|faster) machine\b|\b(?:this|last) week\b|\bsame quiet runs\b"
    r"|\btried and dropped\b|\brun `?cm\d",
    re.IGNORECASE,
)


def user_docs() -> list[Path]:
    """What a user reads: the README, docs/ (but the generated CLI page) and the model cards."""
    docs = [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "models").glob("*.md")),
    ]
    return [p for p in docs if p != CLI_DOC and not p.name.endswith("-training.md")]


def linked_docs() -> list[Path]:
    return [ROOT / "CHANGELOG.md", *user_docs(), *(ROOT / "models").glob("*-training.md")]


def anchors(doc: Path) -> set[str]:
    """GitHub's ids for the headings of ``doc``: lower case, punctuation dropped, spaces to dashes."""
    heads = re.findall(r"^#+\s+(.+?)\s*$", doc.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def test_model_card_fits_on_two_screens() -> None:
    lines = MODEL_CARD.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 100, (
        f"{MODEL_CARD.name} has {len(lines)} lines: keep it <= 100 (history goes to the training log)"
    )


def test_user_docs_carry_no_development_history() -> None:
    found = [
        f"{doc.relative_to(ROOT)}:{n}: {m.group(0)!r}"
        for doc in user_docs()
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
        for m in HISTORY.finditer(line)
    ]
    assert not found, "development history in the user docs (it belongs in CHANGELOG.md):\n" + "\n".join(
        found
    )


def test_links_between_docs_resolve() -> None:
    broken = []
    for doc in linked_docs():
        text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            dest = (doc.parent / path).resolve() if path else doc
            if not dest.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)
