"""The ``facetags`` command line: parse, call the library, print. Nothing else.

Sub-commands live in ``facetags/commands/<name>.py`` and are imported only when they run
(or when ``--help`` lists them), so ``facetags --help`` stays instant: no onnxruntime,
TensorFlow or Textual is imported here. Heavy modules are imported inside command bodies.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import sqlite3
import sys
from typing import Any

import click

from facetags import __version__
from facetags.commands.group import (
    LIBRARY_HELP,
    VERBOSE_HELP,
    Group,
    add_global_options,
    configure_logging,
    one_line,
)
from facetags.errors import FacetagsError
from facetags.text import shown

# name -> "module:attribute" (relative to facetags.commands)
COMMANDS: dict[str, str] = {
    "detect": "detect:detect",
    "scan": "scan:scan",
    "watch": "watch:watch",
    "people": "people:people",
    "faces": "people:faces",
    "name": "people:name",
    "merge": "people:merge",
    "move": "people:move",
    "reject": "people:reject",
    "suggest": "people:suggest",
    "status": "status:status",
    "forget": "forget:forget",
    "find": "find:find",
    "eval": "evaluate:eval_group",
    "train": "train:train",
    "xmp": "xmp:xmp_group",
    "tui": "tui:tui",
    "version": "version:version",
}


#: How ``facetags --help`` groups the commands: what a user types first, then the people, the
#: library, and the commands for developing the models.
SECTIONS: dict[str, tuple[str, ...]] = {
    "Start here": ("scan", "watch", "tui", "find"),
    "People": ("people", "name", "merge", "move", "reject", "suggest", "faces"),
    "Library": ("status", "xmp", "forget", "version"),
    "Developing the models": ("detect", "eval", "train"),
}
assert sorted(n for names in SECTIONS.values() for n in names) == sorted(COMMANDS)


def _available(name: str) -> bool:
    module = COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(f"facetags.commands.{module}") is not None


class LazyGroup(Group):
    """A click group whose commands are imported on first use. Every command also takes the
    group's options (``facetags people --library lib.db``); usage errors are one line."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise one_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise one_line(exc) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for names in SECTIONS.values() for name in names if _available(name)]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands under the headings of :data:`SECTIONS`, each with the first sentence of
        its help, wrapped (click's default cuts it at the width, with "...")."""
        for heading, names in SECTIONS.items():
            rows = []
            for name in names:
                command = self.get_command(ctx, name)  # None where not installed
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(limit=200)))  # wrapped, not cut
            if rows:
                with formatter.section(heading):
                    formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not _available(cmd_name):
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(f"facetags.commands.{module_name}")
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return add_global_options(command)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="facetags")
@click.option(
    "--library",
    type=click.Path(dir_okay=False),
    envvar="FACETAGS_LIBRARY",
    default=None,
    help=LIBRARY_HELP,
)
@click.option("-v", "--verbose", count=True, help=VERBOSE_HELP)
@click.pass_context
def cli(ctx: click.Context, library: str | None, verbose: int) -> None:
    """facetags: find, name and tag the people in your photos, privately and offline."""
    configure_logging(ctx, verbose)
    from facetags.config import load_settings

    ctx.obj = load_settings(library=library)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: domain errors become one line on stderr and exit status 1."""
    try:
        rv = cli.main(args=argv, prog_name="facetags", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        shown_text = io.StringIO()  # click's message may quote a file name given on the command line
        exc.show(shown_text)
        click.echo("\n".join(shown(line) for line in shown_text.getvalue().splitlines()), err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except FacetagsError as exc:
        click.echo(f"facetags: error: {shown(str(exc))}", err=True)
        sys.exit(1)
    except sqlite3.Error as exc:  # one that facetags.db did not turn into a LibraryError
        click.echo(f"facetags: error: the library failed ({type(exc).__name__}: {exc})", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    if isinstance(rv, int) and rv != 0:
        sys.exit(rv)
    return rv
