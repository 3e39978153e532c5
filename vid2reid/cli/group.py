"""``vid2reid group``: which walks of a store are one person, found without labels."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vid2reid.cli._app import app, setup_logging, show_progress, user_errors
from vid2reid.threads import set_threads


# fmt: off
@app.command("group")
def group_cli(
    run: Path = typer.Option(..., "--run", "-r", help="Run directory written by 'vid2reid train' (its encoder describes each walk).", file_okay=False),
    data: Path = typer.Option(..., "--data", "-d", help="Skeleton store whose walks are grouped (every walk, train and test).", file_okay=False),
    out: Path = typer.Option(Path("people.csv"), "--out", "-o", help="CSV written: path (as in the manifest), person, confidence (0-1).", dir_okay=False),
    people: Optional[int] = typer.Option(None, "--people", min=1, help="Force this many people (default: found from the data)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write a page to this folder: each group with a picture of every walk's skeleton.", file_okay=False),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars (only on a terminal)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More log output."),
) -> None:
    # fmt: on
    """Give every walk a person id and a confidence, choosing the number of people without labels."""
    setup_logging(verbose)
    with user_errors():
        set_threads()  # before torch loads: one thread per core, waiting threads sleep
        from vid2reid.grouping import group_store, write_group_report, write_grouping_csv

        g = group_store(data, run, people=people, progress=show_progress(progress))
        write_grouping_csv(g, out)
        a = g.association
        for line in g.skipped:
            typer.echo(f"skipped: {line}", err=True)
        typer.echo(f"{len(a.labels)} walks, {a.people} people found, {a.singletons} singletons "
                   f"-> {out}")
        lo, hi = a.people_range
        unsure = int((a.confidence < 0.5).sum())
        typer.echo(f"plausible number of people: {lo}-{hi}" + (" (forced with --people)"
                   if people is not None else "") + f"; {unsure} walks with confidence below 0.5")
        if g.evaluation:
            e = g.evaluation
            typer.echo(f"evaluation against the store's {e['subjects']} subjects (not used to "
                       f"group): ARI {e['ari']:.3f}, pairwise precision {e['precision']:.3f}, "
                       f"recall {e['recall']:.3f}")
        if report is not None:
            index = write_group_report(g, data, report, progress=show_progress(progress))
            typer.echo(f"report: {index}")
