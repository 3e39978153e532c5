"""Command line: one thin module per command, each calling a library function."""

from vid2reid.cli._app import app
from vid2reid.cli import convert, evaluate, extract, importer, render, train  # noqa: F401 (registers them)
from vid2reid.cli import export, group, index, match  # noqa: F401 (registers them)

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``vid2reid`` console script."""
    app()
