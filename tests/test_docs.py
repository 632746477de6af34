"""Docs generated from code are checked for drift.

``docs/cli.md`` is every command's help, rendered here from the click command objects as
Markdown (no terminal wrapping, so the page does not depend on click's version or the terminal);
``docs/settings.md`` is every setting of ``facetags.config.Settings`` and every ``FACETAGS_*``
variable. Regenerate both with ``FACETAGS_UPDATE_DOCS=1 python -m pytest tests/test_docs.py``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from facetags.cli import cli
from facetags.config import Settings

ROOT = Path(__file__).resolve().parents[1]
CLI_DOC = ROOT / "docs" / "cli.md"
SETTINGS_DOC = ROOT / "docs" / "settings.md"
REGENERATE = "FACETAGS_UPDATE_DOCS=1 python -m pytest tests/test_docs.py"

CLI_HEADER = f"""# Command line

Generated from the code (`{REGENERATE}`); a test fails
when this page and the commands disagree. Data goes to stdout (`--json` where offered), progress
and errors to stderr; a failure is one line `facetags: error: ...` and a non-zero exit status (2
for a usage mistake). Every command takes `--library` and `-v` before or after its name; every
setting is in [settings.md](settings.md).
"""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def _paragraphs(text: str) -> list[str]:
    text = text.split("\f")[0]
    return [_one_line(p) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _summary(command: click.Command) -> str:
    """The command's short help, or the whole first paragraph of its help (never cut)."""
    if command.short_help:
        return _one_line(command.short_help)
    paragraphs = _paragraphs(command.help or "")
    return paragraphs[0] if paragraphs else ""


def _anchor(path: list[str]) -> str:
    return "-".join(path)


def _contexts(
    command: click.Command, path: list[str], parent: click.Context | None
) -> Iterator[tuple[click.Command, list[str], click.Context]]:
    ctx = click.Context(command, info_name=path[-1], parent=parent, **command.context_settings)
    yield command, path, ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _contexts(sub, [*path, name], ctx)


def _section(command: click.Command, path: list[str], ctx: click.Context) -> str:
    usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
    lines = [f"## `{' '.join(path)}`", "", "```text", usage, "```", ""]
    for paragraph in _paragraphs(command.help or ""):
        lines += [paragraph, ""]
    # options only: arguments are in the usage line (click >= 8.5 gives them help records too)
    records = [p.get_help_record(ctx) for p in command.get_params(ctx) if isinstance(p, click.Option)]
    lines += ["| option | |", "|---|---|"]
    lines += [f"| `{_cell(opts)}` | {_cell(help_)} |" for opts, help_ in filter(None, records)]
    if isinstance(command, click.Group):
        lines += ["", "| command | |", "|---|---|"]
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                link = f"[`{name}`](#{_anchor([*path, name])})"
                lines.append(f"| {link} | {_cell(_summary(sub))} |")
    return "\n".join(lines) + "\n"


def render_cli() -> str:
    sections = [_section(*found) for found in _contexts(cli, ["facetags"], None)]
    return CLI_HEADER + "\n" + "\n".join(sections)


# -- settings -------------------------------------------------------------------------------------

SETTINGS_HEADER = f"""# Settings

Generated from `facetags/config.py` (`{REGENERATE}`); a
test fails when this page and the code disagree.

Each setting comes from, last one winning: its default, the config file, its `FACETAGS_*`
environment variable, a command-line flag. The config file is TOML at
`~/.config/facetags/config.toml` (`$XDG_CONFIG_HOME/facetags/config.toml`; or the file
`FACETAGS_CONFIG` names); its keys are the names below, and an unknown key or a bad value is an
error that names the file:

```toml
embedder = "dlib-resnet-v1"
min_face = 30
xmp_mode = "sidecar"
```
"""

#: Environment variables that are not settings (checked against the code by a test).
OTHER_VARIABLES = {
    "FACETAGS_CONFIG": "The config file to read instead of `~/.config/facetags/config.toml`; it must exist.",
    "FACETAGS_MODELS_DIR": "A folder of model files to use instead of the ones installed with facetags.",
}


def _flags() -> dict[str, list[str]]:
    """setting -> the command-line options that set it ("(setting NAME)" in their help)."""
    found: dict[str, list[str]] = {"library": ["`--library`"]}
    for command, _path, ctx in _contexts(cli, ["facetags"], None):
        for param in command.get_params(ctx):
            text = getattr(param, "help", None) or ""
            for name in re.findall(r"setting (\w+)", text):
                found.setdefault(name, []).append(f"`{ctx.command_path} {param.opts[0]}`")
    return found


def _default(spec: dataclasses.Field[object]) -> str:
    if spec.name == "library":
        return "`~/.local/share/facetags/library.db` (your data directory)"
    if spec.default is dataclasses.MISSING:  # computed on this machine (e.g. its cores)
        return "this machine's cores" if spec.name == "workers" else "computed"
    return f"`{spec.default!r}`".replace("'", '"')


def render_settings() -> str:
    flags = _flags()
    lines = ["", "| key | default | environment | flag | what it does |", "|---|---|---|---|---|"]
    for spec in dataclasses.fields(Settings):
        kind = getattr(spec.type, "__name__", spec.type)
        env = f"`FACETAGS_{spec.name.upper()}`"
        flag = ", ".join(flags.get(spec.name, [])) or "-"
        doc = _cell(f"{spec.metadata['doc']} ({kind})")
        lines.append(f"| `{spec.name}` | {_cell(_default(spec))} | {env} | {flag} | {doc} |")
    lines += ["", "Other environment variables:", "", "| variable | what it does |", "|---|---|"]
    lines += [f"| `{name}` | {_cell(doc)} |" for name, doc in OTHER_VARIABLES.items()]
    return SETTINGS_HEADER + "\n".join(lines) + "\n"


def _check(doc: Path, text: str) -> None:
    if os.environ.get("FACETAGS_UPDATE_DOCS"):
        doc.write_text(text, encoding="utf-8")
    assert doc.is_file(), f"{doc.name} is missing: run {REGENERATE}"
    assert doc.read_text(encoding="utf-8") == text, f"docs/{doc.name} is out of date: run {REGENERATE}"


def test_cli_doc_matches_the_code() -> None:
    _check(CLI_DOC, render_cli())


# --- the user docs: short, current, linked -------------------------------------------------------

#: The model cards: one per shipped model id (not the training logs, not the folder's README).
MODEL_CARDS = sorted(
    p for p in (ROOT / "models").glob("*.md") if (ROOT / "models" / f"{p.stem}.json").exists()
)

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


@pytest.mark.parametrize("card", MODEL_CARDS, ids=lambda p: p.name)
def test_model_card_fits_on_two_screens(card: Path) -> None:
    lines = card.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 100, (
        f"{card.name} has {len(lines)} lines: keep it <= 100 (history goes to the training log)"
    )


def test_every_shipped_model_has_a_card() -> None:
    specs = {p.stem for p in (ROOT / "models").glob("*.json")}
    assert specs and {p.stem for p in MODEL_CARDS} == specs


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


def test_settings_doc_matches_the_code() -> None:
    _check(SETTINGS_DOC, render_settings())


def test_every_setting_and_variable_is_documented() -> None:
    """Every Settings field has a description, and every FACETAGS_* variable the code reads is
    either a setting's or listed in OTHER_VARIABLES."""
    for spec in dataclasses.fields(Settings):
        assert spec.metadata.get("doc"), f"setting {spec.name} has no description"
    settings = {f"FACETAGS_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    read: set[str] = set()
    for source in (ROOT / "facetags").rglob("*.py"):
        read |= set(re.findall(r"FACETAGS_[A-Z_]*[A-Z]", source.read_text(encoding="utf-8")))
    read = {name for name in read if "_TEST_" not in name}  # test hooks, not for users
    assert read - settings - set(OTHER_VARIABLES) == set(), "document these in OTHER_VARIABLES"
    assert set(OTHER_VARIABLES) <= read, "OTHER_VARIABLES names a variable the code no longer reads"


def test_the_readme_demo_leaves_no_untracked_file_in_the_checkout() -> None:
    """The README's demo keeps its library beside the user (to open it in the TUI afterwards):
    every relative --library file the README names is ignored by git."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    files = {f for f in re.findall(r"--library (\S+)", readme) if not f.startswith(("~", "/", "PATH", "$"))}
    assert files, "the README's demo names no library file"
    for name in sorted(files):
        for suffix in ("", "-wal", "-shm"):
            ignored = subprocess.run(["git", "check-ignore", "-q", name + suffix], cwd=ROOT)
            assert ignored.returncode == 0, f"{name + suffix} would be left untracked: add it to .gitignore"
