"""The command line's manners: global options in either position, suggestions for a mistyped
command, and every user error as one line (no traceback), through the real ``facetags`` process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from facetags.cli import cli
from facetags.config import load_settings


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facetags", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No library in the environment (each test names one), user dirs under tmp_path."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("FACETAGS_")}
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        out[name] = str(tmp_path / name.lower())
    return out


def _every_command(
    command: click.Command, path: list[str], ctx: click.Context
) -> Iterator[tuple[list[str], click.Command, click.Context]]:
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            yield [*path, name], sub, ctx
            sub_ctx = sub.make_context(name, [], parent=ctx, resilient_parsing=True)
            yield from _every_command(sub, [*path, name], sub_ctx)


def test_every_command_takes_the_global_options_after_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`facetags CMD --library X -v` sets the library and the log level as
    `facetags --library X -v CMD` does, for every command and sub-command."""
    for name in list(os.environ):
        if name.startswith("FACETAGS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    root = cli.make_context("facetags", [], resilient_parsing=True)
    root.obj = load_settings()
    paths = []
    for path, command, parent in _every_command(cli, ["facetags"], root):
        wanted = tmp_path / f"{'-'.join(path)}.db"
        ctx = command.make_context(
            path[-1], ["--library", str(wanted), "-v"], parent=parent, resilient_parsing=True
        )
        assert ctx.obj.library == wanted, f"{' '.join(path)} --library"
        assert ctx.find_root().meta["facetags.verbose"] >= 1, f"{' '.join(path)} -v"
        root.meta["facetags.verbose"] = 0
        paths.append(" ".join(path[1:]))
    assert {"people", "scan", "watch", "xmp write", "eval clusters", "train fit"} <= set(paths)


def test_library_after_the_command_in_a_real_run(
    env: dict[str, str], tmp_path: Path, astronaut_path: Path
) -> None:
    library = str(tmp_path / "lib.db")
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copyfile(astronaut_path, folder / "astronaut.jpg")
    scan = run(env, "scan", str(folder), "--library", library)
    assert scan.returncode == 0, scan.stderr
    assert "1 new" in scan.stdout
    after = run(env, "people", "--library", library)
    before = run(env, "--library", library, "people")
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout and "(unnamed)" in after.stdout
    # the flag after the command wins over the environment and the flag before it
    other = run(
        {**env, "FACETAGS_LIBRARY": str(tmp_path / "none.db")},
        "--library",
        "x.db",
        "people",
        "--library",
        library,
    )
    assert other.stdout == before.stdout, other.stderr
    verbose = run(env, "status", "-v", "--library", library)
    assert verbose.returncode == 0 and "photos    1" in verbose.stdout


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], *wanted: str) -> None:
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("facetags: error: "), lines[0]
    for text in wanted:
        assert text in lines[0], lines[0]


def test_user_errors_are_one_line_without_a_traceback(env: dict[str, str], tmp_path: Path) -> None:
    library = str(tmp_path / "lib.db")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(env, "--library", library, "scan", str(empty)).returncode == 0
    cases: list[tuple[list[str], tuple[str, ...]]] = [
        (["people", "--jsn"], ("--jsn", "Did you mean '--json'?", "facetags people --help")),
        (["--frobnicate", "people"], ("--frobnicate",)),
        (["peple"], ("No such command 'peple'", "Did you mean 'people'?", "facetags --help")),
        (["xmp", "wrte"], ("'wrte'", "Did you mean 'write'?", "facetags xmp --help")),
        (["frobnicate"], ("No such command 'frobnicate'.",)),
        (["scan", str(tmp_path / "no-such-folder")], ("no-such-folder",)),
        (["watch", str(tmp_path / "no-such-folder")], ("no-such-folder",)),
        (["name", "999", "Alice"], ("999",)),
        (["name", "999", " "], ("name",)),
        (["merge", "abc"], ("abc",)),
        (["find", "Nobody"], ("Nobody",)),
        (["people", "--library", str(tmp_path / "missing.db")], ("missing.db",)),
    ]
    for args, wanted in cases:
        proc = run(env, "--library", library, *args)
        _assert_one_line_error(proc, *wanted)
        assert "watching" not in proc.stderr


def test_a_bare_command_group_prints_its_help(env: dict[str, str]) -> None:
    """`facetags` alone, or `facetags xmp`, is how a newcomer asks what there is: the help, not
    an error with the help inside it."""
    for args, shows in (([], "Start here:"), (["xmp"], "write")):
        proc = run(env, *args)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        assert proc.stdout.startswith("Usage: facetags") and shows in proc.stdout


def test_the_command_list_says_each_summary_whole(env: dict[str, str]) -> None:
    """`facetags --help` in 80 columns: each command's first sentence, wrapped; click's default
    cut most of them short with "..." ("Index photo folders: new, changed, moved, duplicated
    and...")."""
    proc = run({**env, "COLUMNS": "80"}, "--help")
    commands = proc.stdout.split("Start here:", 1)[1]
    assert proc.returncode == 0 and "..." not in commands, proc.stdout
    listed = " ".join(commands.split())
    assert "scan Index photo folders: new, changed, moved, duplicated and missing photos." in listed
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80
