"""What every command shares: the global options in either position, command suggestions, and
usage errors as one line.

``facetags --library lib.db people`` and ``facetags people --library lib.db`` mean the same: the
group's options are added to every sub-command too (:func:`add_global_options`); given after the
sub-command they override the group's.
"""

from __future__ import annotations

import difflib
import logging
import sys
from typing import IO, Any

import click

from facetags.text import OwnDebug, ShownFormatter

LIBRARY_HELP = "The library file (env FACETAGS_LIBRARY; default: the user's data dir)."
VERBOSE_HELP = "More log output on stderr (-vv for debug)."
_VERBOSE_KEY = "facetags.verbose"


def configure_logging(ctx: click.Context, more: int) -> None:
    """Log to stderr at WARNING, INFO with -v, DEBUG with -vv (counted over every position)."""
    root_ctx = ctx.find_root()
    verbose = root_ctx.meta.get(_VERBOSE_KEY, 0) + more
    root_ctx.meta[_VERBOSE_KEY] = verbose
    level = logging.WARNING - 10 * min(verbose, 2)
    root = logging.getLogger()
    if not any(isinstance(h, _Handler) for h in root.handlers):
        handler = _Handler()
        handler.setFormatter(ShownFormatter("facetags: %(levelname)s: %(message)s"))
        handler.addFilter(OwnDebug())
        root.addHandler(handler)
    root.setLevel(level)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg, unused-ignore]
    """facetags' own handler: writes to whatever ``sys.stderr`` is when a record comes (tests
    and embedding programs swap it); its formatter escapes paths (facetags.text.shown)."""

    @property  # type: ignore[override, unused-ignore]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _library_given(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        from facetags.config import load_settings

        ctx.obj = load_settings(library=value)


def _verbose_given(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    if value:
        configure_logging(ctx, value)


def _global_options() -> list[click.Option]:
    return [
        click.Option(
            ["--library"],
            type=click.Path(dir_okay=False),
            default=None,
            expose_value=False,
            callback=_library_given,
            help=LIBRARY_HELP,
        ),
        click.Option(
            ["-v", "--verbose"], count=True, expose_value=False, callback=_verbose_given, help=VERBOSE_HELP
        ),
    ]


def add_global_options(command: click.Command) -> click.Command:
    """Give ``command`` (and, for a group, each of its sub-commands) ``--library`` and ``-v``.
    Idempotent."""
    names = {param.name for param in command.params}
    if "library" not in names:
        command.params.extend(_global_options())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_global_options(sub)
    return command


class OneLineUsageError(click.UsageError):
    """A usage error shown as one line on stderr, with where to look next."""

    def show(self, file: IO[Any] | None = None) -> None:
        where = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"facetags: error: {self.format_message()}{where}", err=True, file=file)


def one_line(exc: click.UsageError) -> OneLineUsageError:
    out = OneLineUsageError(exc.format_message(), exc.ctx)
    out.exit_code = exc.exit_code
    return out


#: click >= 8.2 raises this for a bare group (8.1 printed the help and exited 0 by itself).
_NO_ARGS_IS_HELP: tuple[type[click.UsageError], ...] = tuple(
    e for e in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if e is not None
)


class Group(click.Group):
    """A click group that suggests the closest commands for a mistyped one, and whose bare name
    (`facetags`, `facetags xmp`) prints its help, not a usage error."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _NO_ARGS_IS_HELP as exc:
            assert exc.ctx is not None
            click.echo(exc.ctx.get_help())
            exc.ctx.exit(0)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        unknown = name and not name.startswith("-") and self.get_command(ctx, name) is None
        if unknown and not ctx.resilient_parsing:
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise OneLineUsageError(f"No such command {name!r}.{hint}", ctx)
        return super().resolve_command(ctx, args)


def log_info_to_stderr() -> None:
    """Long runs (training) show facetags' INFO lines on stderr, with the time."""
    root = logging.getLogger()
    if root.level > logging.INFO or not root.handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("facetags").setLevel(logging.INFO)
