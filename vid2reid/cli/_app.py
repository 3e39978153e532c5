"""The typer application and the one place where user errors become exit codes."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

import typer

from vid2reid import interrupts
from vid2reid.errors import Vid2ReidError

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
    except KeyboardInterrupt:
        typer.echo("interrupted: finished work is kept; re-run the same command to resume",
                   err=True)
        raise typer.Exit(130) from None


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr; progress bars own stdout's line."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(message)s", stream=sys.stderr, force=True)
