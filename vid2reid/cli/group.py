"""``vid2reid group``: which walks of a store are one person, found without labels."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from vid2reid.cli._app import app, setup_logging, show_progress, user_errors
from vid2reid.threads import set_threads


# fmt: off
@app.command("group")
def group_cli(
    run: Optional[Path] = typer.Option(None, "--run", "-r", help="Run to use: a run folder written by 'vid2reid train', a folder of runs (its latest finished run) or a LATEST file. Default: the latest run in --runs-dir. Its encoder describes each walk."),
    data: Path = typer.Option(..., "--data", "-d", help="Skeleton store whose walks are grouped (every walk, train and test).", file_okay=False),
    out: Path = typer.Option(Path("people.csv"), "--out", "-o", help="CSV written: path (as in the manifest), person, confidence (0-1).", dir_okay=False),
    people: Optional[int] = typer.Option(None, "--people", min=1, help="Force this many people (default: found from the data)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write a page to this folder (opens from disk): each person found with a strip of every walk (video frames with the skeleton drawn, or the skeleton alone) and its confidence.", file_okay=False),
    videos: List[Path] = typer.Option([], "--videos", help="--report: a folder (or file) whose videos the page may show for walks whose manifest records them there (e.g. the folder given to 'vid2reid extract'); besides it, only videos inside the store are read. Give it more than once for several folders."),
    device: str = typer.Option("cpu", "--device", help="Where the run's model embeds walks: cpu, cuda, cuda:N or auto (a GPU when there is one)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where runs live; its LATEST file names the default run."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars (only on a terminal)."),
    force: bool = typer.Option(False, "--force", help="Replace outputs vid2reid did not write: an --out file that is not group's CSV, a --report folder holding other files (files of the same names are replaced; nothing else is deleted)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More log output."),
) -> None:
    # fmt: on
    """Give every walk a person id and a confidence, choosing the number of people without labels."""
    setup_logging(verbose)
    with user_errors():
        set_threads()  # before torch loads: one thread per core, waiting threads sleep
        from vid2reid import safepath
        from vid2reid.grouping import (group_store, walks_word, write_group_report,
                                       write_grouping_csv)

        safepath.check_output_file(out, safepath.csv_starts_with("path,person,confidence"),
                                   "a grouping CSV", force, "--out")  # before any work
        if report is not None:
            safepath.check_output_folder(report, safepath.GROUP_REPORT, force, "--report")

        g = group_store(data, run, people=people, progress=show_progress(progress),
                        device=device, runs_dir=runs_dir)
        write_grouping_csv(g, out)
        a = g.association
        for line in g.skipped:
            typer.echo(f"skipped: {line}", err=True)
        typer.echo(f"{walks_word(len(a.labels))}, {a.people} people found, {a.singletons} "
                   f"singletons -> {out}")
        lo, hi = a.people_range
        unsure = int((a.confidence < 0.5).sum())
        typer.echo(f"plausible number of people: {lo}-{hi}" + (" (forced with --people)"
                   if people is not None else "") + f"; {walks_word(unsure)} with confidence "
                   f"below 0.5")
        if g.evaluation:
            e = g.evaluation
            typer.echo(f"evaluation against the store's {e['subjects']} subjects (not used to "
                       f"group): ARI {e['ari']:.3f}, pairwise precision {e['precision']:.3f}, "
                       f"recall {e['recall']:.3f}")
        if report is not None:
            index = write_group_report(g, data, report, progress=show_progress(progress),
                                       force=force, videos=videos)
            typer.echo(f"report: {index}")
