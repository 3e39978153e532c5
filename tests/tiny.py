"""Tiny training runs for tests: a model small and short enough to train in seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from vid2reid.cli import app


def tiny_options(epochs: int = 1, one_thread: bool = True) -> list[str]:
    """``vid2reid train`` options of a tiny run (20-frame windows, 32 hidden units, CPU)."""
    return (["--epochs", str(epochs), "--f", "20", "--x", "5", "--batch-size", "16",
             "--hidden", "32", "--device", "cpu", "--no-progress"]
            + (["--threads", "1"] if one_thread else []))


def train_tiny(store: Path, out: Path, seed: int = 0, epochs: int = 1) -> Path:
    """A tiny run trained on ``store`` into ``out`` through the command line."""
    r = CliRunner().invoke(app, ["train", "--data", str(store), "--out", str(out),
                                 "--seed", str(seed), *tiny_options(epochs)])
    assert r.exit_code == 0, r.output
    return out
