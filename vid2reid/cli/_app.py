"""The typer application and the one place where user errors become exit codes."""

from __future__ import annotations

import contextlib
import errno
import logging
import sys
from collections.abc import Iterator

import typer

from vid2reid import interrupts
from vid2reid.errors import Vid2ReidError

class GroupedOptions(typer.core.TyperCommand):
    """Plain help in which options with a ``rich_help_panel`` are listed under that heading
    (e.g. a method's own settings), after the general options."""

    def format_options(self, ctx, formatter) -> None:  # noqa: ANN001 (click's types)
        groups: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record:
                panel = getattr(param, "rich_help_panel", None) or "Options"
                groups.setdefault(panel, []).append(record)
        for name, rows in groups.items():
            with formatter.section(name):
                formatter.write_dl(rows)


app = typer.Typer(
    name="vid2reid",
    help="RGB walking videos -> 3D skeletons -> unsupervised skeleton person re-ID.\n\n"
    "Typical use: 'vid2reid extract sample_videos/', then 'vid2reid train', then "
    "'vid2reid eval --probe Bags --gallery Normal'. See README.md and docs/.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain help: wrapped at the terminal's width, never cut off with '...' in a table cell
    rich_markup_mode=None,
)


def version() -> str:
    """The installed vid2reid's version (the package's own when it runs from a source tree)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("vid2reid")
    except PackageNotFoundError:
        from vid2reid import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"vid2reid {version()}")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                      help="Print vid2reid's version and exit."),
) -> None:
    """RGB walking videos -> 3D skeletons -> unsupervised skeleton person re-ID."""


# What help shows for an option's value and an argument, in words rather than Python types:
# typer (0.2x) writes '<list[Path]>', '<int range>', '<str>', and '{videos}...' for a required
# argument in the usage line.
_WORDS = {"path": "PATH", "file": "FILE", "dir": "DIR", "directory": "DIR", "int": "N",
          "int range": "N", "float": "X", "float range": "X", "str": "TEXT", "bool": ""}


def _plain_word(label: str) -> str:
    inner = label[1:-1] if label.startswith("<") and label.endswith(">") else label
    while inner.startswith("list[") and inner.endswith("]"):
        inner = inner[5:-1]
    return _WORDS.get(inner.lower(), inner if "|" in inner else inner.upper())


def _plain_help_words() -> None:
    """Make help show PATH, N, TEXT, ... instead of Python type names, and arguments by their
    upper-case names (VIDEOS...), where typer's help formatter is the one this was written for."""
    try:
        from typer.core import TyperArgument, _TyperParameter
    except ImportError:  # older typer: click's formatter, which has no Python type names
        return
    if getattr(_TyperParameter, "_vid2reid_words", False) or not all(
            hasattr(c, n) for c, n in ((_TyperParameter, "display_type"),
                                       (TyperArgument, "display_type_rich"),
                                       (TyperArgument, "_usage_display_name"),
                                       (TyperArgument, "_rich_display_name"))):
        return
    display_type = _TyperParameter.display_type

    def plain_display_type(self, ctx):  # type: ignore[no-untyped-def]
        label = display_type(self, ctx)
        return _plain_word(label) if isinstance(label, str) else label

    def argument_name(self) -> str:  # type: ignore[no-untyped-def]
        name = self.metavar or self.name.upper()
        return name + ("..." if self.nargs != 1 and not name.endswith("...") else "")

    def argument_usage(self) -> str:  # type: ignore[no-untyped-def]
        return argument_name(self) if self.required else f"[{argument_name(self)}]"

    _TyperParameter.display_type = plain_display_type
    TyperArgument.display_type_rich = lambda self, ctx: None  # its name says it
    TyperArgument._rich_display_name = argument_name
    TyperArgument._usage_display_name = argument_usage
    _TyperParameter._vid2reid_words = True


_plain_help_words()


_OS_HINTS = {errno.ENOSPC: "free some disk space and re-run the same command (finished work "
                          "is kept, nothing was half-written)",
             errno.EDQUOT: "free some space under your quota and re-run the same command",
             errno.EROFS: "choose a folder on a file system you can write",
             errno.EACCES: "no permission; choose a folder you can write or fix its permissions",
             errno.EPERM: "not permitted; choose a folder you can write or fix its permissions",
             errno.ENOENT: "no such file or folder; check the path",
             errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
             errno.EISDIR: "is a folder; give a file name"}


def os_error_line(exc: OSError) -> str:
    """An OSError as one line: the path, what the OS said, and what to do."""
    where = exc.filename if exc.filename is not None else "a file"
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    what = exc.strerror or str(exc) or type(exc).__name__
    hint = _OS_HINTS.get(exc.errno or -1, "check the path and re-run the same command")
    return f"{where}: {what}; {hint}"


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into a one-line message on stderr and exit code 1.

    Ctrl-C exits with 130; whatever was already written stays valid because
    every file is written atomically.
    """
    try:
        with interrupts.remembered():
            yield
    except Vid2ReidError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:  # read-only folder, full disk, no permission: the OS said no
        typer.echo(f"error: {os_error_line(exc)}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: finished work is kept; re-run the same command to resume",
                   err=True)
        raise typer.Exit(130) from None


def show_progress(progress: bool) -> bool:
    """Progress bars only on a terminal: in a log file (redirected stderr) they are noise."""
    return progress and sys.stderr.isatty()


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr; progress bars own stdout's line."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(message)s", stream=sys.stderr, force=True)
