"""``vid2reid match``: rank a gallery for query walks (videos, folders of videos or stores)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from vid2reid.cli._app import app, setup_logging, user_errors
from vid2reid.threads import set_threads


# fmt: off
@app.command("match")
def match_cli(
    queries: List[Path] = typer.Argument(..., help="Query walks: walk files of a store (skeletons/001/001-nm-01-090.npz) or folders inside one, video files, folders of videos (extracted with the pose backend that gives the gallery's joint layout, into --cache, reused next time), or skeleton stores."),
    gallery: Path = typer.Option(..., "--gallery", "-g", help="Gallery: a skeleton store, or an index file written by 'vid2reid index' (then only the queries are embedded)."),
    run: Optional[Path] = typer.Option(None, "--run", "-r", help="Run to use: a run folder written by 'vid2reid train', a folder of runs (its latest finished run) or a LATEST file. Default: the index's run, else the latest run in --runs-dir."),
    top: int = typer.Option(10, "--top", "-k", min=1, help="Gallery walks listed per query, best first."),
    level: str = typer.Option("sequence", "--level", help="sequence (a walk against a walk: the mean of its windows' features, as eval's sequence level) or window (every f-frame window on its own)."),
    query_condition: Optional[str] = typer.Option(None, "--query-condition", help="Store queries: only rows of this condition (Normal/nm, Bags/bg, Clothes/cl or any code)."),
    query_split: Optional[str] = typer.Option(None, "--query-split", help="Store queries: only train or test rows (the manifest's split column, else eval's default subject ranges)."),
    gallery_condition: Optional[str] = typer.Option(None, "--gallery-condition", help="Gallery store: only rows of this condition."),
    gallery_split: Optional[str] = typer.Option(None, "--gallery-split", help="Gallery store: only train or test rows."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the rankings as JSON.", dir_okay=False),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Also write one CSV row per (query, rank): query, rank, gallery, distance, margin, subjects, ...", dir_okay=False),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write DIR/index.html (opens from disk): each query and its top matches as strips of video frames with the skeleton drawn (or the skeleton alone), distances under them.", file_okay=False),
    videos: List[Path] = typer.Option([], "--videos", help="--report: a folder (or file) whose videos the page may show for gallery walks whose manifest records them there; besides it, only videos inside a walk's store or named as queries are read. Give it more than once for several folders."),
    cache: Path = typer.Option(Path("match-cache"), "--cache", help="Where video queries' skeletons are kept (one store per query argument; delete it to extract again).", file_okay=False),
    backend: str = typer.Option("auto", "--backend", "-b", help="Pose backend for video queries: auto (the one that gives the gallery's layout: mediapipe for blazepose-33, mmpose for h36m-17), mmpose or mediapipe."),
    search: str = typer.Option("auto", "--search", help="exact (every distance), flat (the same through a flat FAISS index), ivf (an approximate FAISS index whose shortlist is re-ranked exactly: for millions of walks) or auto (ivf from 200,000 gallery items when faiss is installed, or an index file's own, else exact)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Open-set threshold: a query whose rank-1 walk is farther than this distance gets the verdict 'nobody in the gallery'. Default: set from the gallery's own distances, without labels (docs/usage.md says how, and its measured false-alarm rate)."),
    device: str = typer.Option("cpu", "--device", help="Where the run's model embeds walks: cpu, cuda, cuda:N or auto (a GPU when there is one)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where runs live; its LATEST file names the default run."),
    force: bool = typer.Option(False, "--force", help="Replace outputs vid2reid did not write: a --csv or --json file that is not match's rankings, a --report folder holding other files (files of the same names are replaced; nothing else is deleted)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More log output."),
) -> None:
    # fmt: on
    """Re-identify: the gallery walks nearest to each query walk, with distances, a margin and
    a verdict: known, or nobody in the gallery (open-set; threshold set without labels).

    A gallery walk identical to a query (the same recording) is never listed. Identities
    in the manifests are shown but never used for ranking. A query that cannot be used
    (no person in the video, too short, another joint layout) is reported in one line and
    the others go on; the exit code is then 1.
    """
    setup_logging(verbose)
    from vid2reid.match_report import format_results, results_csv, results_json, write_text
    from vid2reid.match import match

    with user_errors():
        set_threads()  # before torch loads: one thread per core, waiting threads sleep
        check_outputs(json_path, csv_path, report, force)  # before any work
        out = match(queries, gallery, run_dir=run, top=top, level=level.strip().lower(),
                    query_condition=query_condition, query_split=query_split,
                    gallery_condition=gallery_condition, gallery_split=gallery_split,
                    cache=cache, backend=backend, search=search.strip().lower(), runs_dir=runs_dir,
                    device=device, threshold=threshold)
        for line in out.errors:
            typer.echo(f"error: {line}", err=True)
        if not out.results:
            if not out.errors:  # else the lines above said why
                typer.echo("error: no query walk could be matched", err=True)
            raise typer.Exit(1)
        if json_path is not None:
            info = {"gallery": str(gallery), "level": level, "top": top, "notes": out.notes,
                    "errors": out.errors,
                    "threshold": None if out.threshold is None else out.threshold.value,
                    "threshold_source": None if out.threshold is None else out.threshold.source}
            write_text(json_path, json.dumps(results_json(out.results, info), indent=2) + "\n")
            typer.echo(f"rankings written to {json_path}")
        if csv_path is not None:
            write_text(csv_path, results_csv(out.results))
            typer.echo(f"rankings written to {csv_path}")
        if report is not None:
            from vid2reid.match_report import write_match_report

            index = write_match_report(out.results, report, force=force,
                                       videos=[*queries, *videos],
                                       window=out.f if level.strip().lower() == "window" else None)
            typer.echo(f"page written to {index} (open it in a browser)")
        for note in out.notes:
            typer.echo(f"note: {note}")
        typer.echo(format_results(out.results, level))
        if out.errors:
            raise typer.Exit(1)


def check_outputs(json_path: Path | None, csv_path: Path | None, report: Path | None,
                  force: bool) -> None:
    """The output rule (docs/usage.md): refuse a --json, --csv or --report that holds what
    match did not write, unless --force."""
    from vid2reid import safepath

    if json_path is not None:
        safepath.check_output_file(json_path, safepath.json_with("queries"), "rankings", force,
                                   "--json")
    if csv_path is not None:
        safepath.check_output_file(csv_path, safepath.csv_starts_with("query,rank,gallery"),
                                   "a rankings CSV", force, "--csv")
    if report is not None:
        safepath.check_output_folder(report, safepath.MATCH_REPORT, force, "--report")
