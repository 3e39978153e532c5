"""``vid2reid import NAME SRC --out STORE``: existing skeleton data sets -> skeleton store."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import typer

from vid2reid.cli._app import app, show_progress, user_errors

import_app = typer.Typer(
    name="import",
    help="Import an existing skeleton data set (KGBD, KS20, IAS-Lab, BIWI, or your own files) "
         "into a skeleton store, with the papers' train/probe/gallery protocol in the manifest. "
         "See docs/importers.md.",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")

_OUT = typer.Option(..., "--out", "-o", help="Skeleton store to write (re-running rewrites it).")
_PROGRESS = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (only "
                         "on a terminal).")
_FORCE = typer.Option(False, "--force", help="Write into --out even when it holds something else "
                      "than a store of this importer (nothing the import did not write is "
                      "deleted).")


def _seed_option() -> int:
    return typer.Option(0, "--seed", min=0, help="Seed of the random per-person "
                        "probe/gallery/train draw (same seed, same split).")


def _trim_option(default: int, where: str) -> int:
    return typer.Option(default, "--trim", min=0, help=f"Frames cut {where} (after dropping "
                        f"dropout frames).")


def _run(fn: Callable, **kwargs) -> None:
    """Call an importer, print its summary; exit 1 (with the skip list) if nothing was imported."""
    from vid2reid.importers import NothingImportedError

    kwargs["progress"] = show_progress(kwargs.get("progress", True))
    with user_errors():
        try:
            summary = fn(**kwargs)
        except NothingImportedError as exc:
            for line in exc.summary.lines():
                typer.echo(line, err=True)
            raise
    for line in summary.lines():
        typer.echo(line)


@import_app.command("kgbd")
def kgbd_cli(
    src: Path = typer.Argument(..., help="Folder holding Person001/ ... with 1.txt, 2.txt, ..."),
    out: Path = _OUT,
    seed: int = _seed_option(),
    trim: int = _trim_option(10, "at both ends of every walk"),
    progress: bool = _PROGRESS,
    force: bool = _FORCE,
) -> None:
    """KGBD: per person 1 probe walk, 2 gallery walks, the rest train (drawn with --seed).

    Then: 'vid2reid train --data STORE --preset kgbd' and
    'vid2reid eval --data STORE --probe probe --gallery gallery'.
    """
    from vid2reid.importers.kinect import import_kgbd

    _run(import_kgbd, src=src, out=out, seed=seed, trim=trim, progress=progress, force=force)


@import_app.command("ks20")
def ks20_cli(
    src: Path = typer.Argument(..., help="Folder holding the five view folders (frontal, "
                               "left_diagonal, ...) of per-frame <gc>_body<N>_<timestamp> files."),
    out: Path = _OUT,
    seed: int = _seed_option(),
    trim: int = _trim_option(0, "at both ends of every sequence"),
    progress: bool = _PROGRESS,
    force: bool = _FORCE,
) -> None:
    """KS20: per person one gc setting probe, one gallery, the rest train (drawn with --seed).

    Then: 'vid2reid train --data STORE --preset ks20' and
    'vid2reid eval --data STORE --probe probe --gallery gallery'.
    """
    from vid2reid.importers.kinect import import_ks20

    _run(import_ks20, src=src, out=out, seed=seed, trim=trim, progress=progress, force=force)


@import_app.command("ias")
def ias_cli(
    src: Path = typer.Argument(..., help="Folder holding Training/, TestingA/, TestingB/."),
    out: Path = _OUT,
    trim: int = _trim_option(10, "at the start of Training walks and at both ends of "
                             "TestingA/TestingB walks"),
    progress: bool = _PROGRESS,
    force: bool = _FORCE,
) -> None:
    """IAS-Lab: Training trains; TestingA and TestingB are probe/gallery for each other.

    Then: 'vid2reid train --data STORE --preset ias-a' and
    'vid2reid eval --data STORE --probe TestingA --gallery TestingB' (and the reverse).
    """
    from vid2reid.importers.kinect import import_ias

    _run(import_ias, src=src, out=out, trim=trim, progress=progress, force=force)


@import_app.command("biwi")
def biwi_cli(
    src: Path = typer.Argument(..., help="Folder holding Training/ and Testing/{Walking,Still}/."),
    out: Path = _OUT,
    trim: int = _trim_option(10, "at both ends of every sequence"),
    progress: bool = _PROGRESS,
    force: bool = _FORCE,
) -> None:
    """BIWI: Training trains; Walking and Still are probe/gallery for each other.

    Then: 'vid2reid train --data STORE --preset biwi-w' and
    'vid2reid eval --data STORE --probe Walking --gallery Still' (and the reverse).
    """
    from vid2reid.importers.kinect import import_biwi

    _run(import_biwi, src=src, out=out, trim=trim, progress=progress, force=force)


@import_app.command("csv")
def csv_cli(
    src: Path = typer.Argument(..., help="Folder of per-walk .csv/.txt (one frame per row, J*3 "
                               "numbers) or .npy (T, J, 3) files."),
    out: Path = _OUT,
    layout: str = typer.Option(..., "--layout", help="Joint layout: a known one (kinect-v1-20, "
                               "kinect-v2-25, h36m-17, coco-17, ...; J must match) or any name "
                               "(then every file must have the same J)."),
    mapping: Optional[Path] = typer.Option(None, "--mapping", help="CSV with columns file, "
                                           "subject, condition, split[, sequence, view] "
                                           "(default: SRC/mapping.csv)."),
    trim: int = _trim_option(0, "at both ends of every walk"),
    zero_joints: bool = typer.Option(True, "--drop-zero-joints/--keep-zero-joints",
                                     help="Drop frames with a joint at exactly 0,0,0 (sensor "
                                          "dropout); keep them for root-centred data."),
    progress: bool = _PROGRESS,
    force: bool = _FORCE,
) -> None:
    """Your own skeleton files, described by a mapping CSV (see docs/importers.md)."""
    from vid2reid.importers.generic import import_csv

    _run(import_csv, src=src, out=out, layout=layout, mapping=mapping, trim=trim,
         drop_zero_joints=zero_joints, progress=progress, force=force)
