"""``vid2reid index``: embed a gallery store once, for repeated ``vid2reid match`` calls."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vid2reid.cli._app import app, setup_logging, user_errors
from vid2reid.threads import set_threads


# fmt: off
@app.command("index")
def index_cli(
    data: Path = typer.Option(..., "--data", "-d", help="Gallery skeleton store.", file_okay=False),
    out: Path = typer.Option(..., "--out", "-o", help="Index file to write (e.g. gallery.idx).", dir_okay=False),
    run: Optional[Path] = typer.Option(None, "--run", "-r", help="Run to use: a run folder written by 'vid2reid train', a folder of runs (its latest finished run) or a LATEST file. Default: the latest run in --runs-dir."),
    condition: Optional[str] = typer.Option(None, "--condition", help="Only rows of this condition (Normal/nm, Bags/bg, ...)."),
    split: Optional[str] = typer.Option(None, "--split", help="Only train or test rows."),
    device: str = typer.Option("cpu", "--device", help="Where the run's model embeds walks: cpu, cuda, cuda:N or auto (a GPU when there is one)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where runs live; its LATEST file names the default run."),
    search: str = typer.Option("auto", "--search", help="auto (also build an approximate FAISS index beside --out from 200,000 walks on, when faiss is installed), ivf (always) or exact (never). match re-ranks its shortlists exactly."),
    force: bool = typer.Option(False, "--force", help="Replace --out even when it is not a gallery index (a file of yours of that name)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More log output."),
) -> None:
    # fmt: on
    """Store a gallery's walk features, manifest rows and the run's identity in one file.

    'vid2reid match QUERY --gallery FILE' then embeds only the queries; it refuses an
    index built by another run (other weights or settings).
    """
    setup_logging(verbose)
    with user_errors():
        set_threads()  # before torch loads: one thread per core, waiting threads sleep
        from vid2reid.gallery_index import build_index, check_index_out
        from vid2reid.run import open_run

        check_index_out(out, force)  # before any work
        opened = open_run(run, runs_dir)
        run = opened.path
        index = build_index(opened, data, condition, split, device)
        check_index_out(out, force)  # again: it may have appeared meanwhile
        index.save(out, search.strip().lower())
        w = index.walks
        typer.echo(f"index written to {out}: {len(w)} walk{'' if len(w) == 1 else 's'} ({len(w.window_features)} windows, "
                   f"{w.features.shape[1]} features each) from {data}, run {run}")
