"""``vid2reid eval``: CMC and mAP of a trained run (or raw coordinates) on a skeleton store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from vid2reid.cli._app import app, setup_logging, user_errors


# fmt: off
@app.command("eval")
def eval_cli(
    run: Path = typer.Option(None, "--run", "-r", help="Run to use: a run folder written by 'vid2reid train', a folder of runs (its latest finished run) or a LATEST file. Default: the latest run in --runs-dir."),
    data: List[Path] = typer.Option([Path("skeletons")], "--data", "-d", help="Skeleton store to evaluate on (the directory with manifest.csv). Given more than once (stores of the same recordings in different layouts, an ms-clr run): the ensemble of the conventions, see --ensemble."),
    gallery_data: Optional[Path] = typer.Option(None, "--gallery-data", help="Take the gallery items from this store instead (probes stay in --data): cross-convention re-ID, e.g. probes in kinect-v1-20 and gallery in coco-17, with an ms-clr run."),
    ensemble: str = typer.Option("mean", "--ensemble", help="With several --data: mean (average) or concat (concatenate) each store's L2-normalised features."),
    probe: str = typer.Option("Normal", "--probe", "-p", help="Probe condition: Normal, Bags, Clothes (or nm, bg, cl, or any condition code in your store)."),
    gallery: str = typer.Option("Normal", "--gallery", "-g", help="Gallery condition, same names as --probe. '--probe Bags --gallery Normal' is CASIA-B's Bags-Normal setting."),
    protocol: str = typer.Option("simmc", "--protocol", help="simmc (SimMC's split, honest variant), opengait (OpenGait's split, per-view averaging) or all (NON-STANDARD: every sequence is train and test, for tiny sample sets). A 'split' column in the manifest decides train/test under every protocol."),
    json_path: Path = typer.Option(None, "--json", help="Also write the metrics as JSON to this file (fractions in 0..1).", dir_okay=False),
    baseline: str = typer.Option(None, "--baseline", help="'raw': score raw root-relative joint coordinates (mean over each window's frames) instead of a trained run; needs no run."),
    f: int = typer.Option(None, "--f", help="Frames per window for --baseline raw (default: the preset's f, 40 for CASIA-B). A run always uses the f it was trained with.", min=1),
    preset: str = typer.Option(None, "--preset", help="Data-set preset that gives f for --baseline raw (e.g. casia-b, kgbd)."),
    device: str = typer.Option("cpu", "--device", help="Where the run's model embeds walks: cpu, cuda, cuda:N or auto (a GPU when there is one)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where runs live; its LATEST file names the default run."),
    raw: bool = typer.Option(True, "--raw/--no-raw", help="When scoring a run, also score raw root-relative joint coordinates through the same windows and protocol, and print both side by side with one line on what the difference means."),
    report: Path = typer.Option(None, "--report", help="Also write an HTML report to this folder: index.html (opens from disk) with the result table, the CMC curve (rank 1-20, trained vs raw), a 2-D map of the test features coloured by identity and the run's training curves, each also as a PNG. Needs matplotlib.", file_okay=False),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for PyTorch. Default: one per core; waiting threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE unless set), so other jobs on the same cores slow it down no more than they would one thread."),
    force: bool = typer.Option(False, "--force", help="Replace outputs vid2reid did not write: a --json file that is not eval's metrics, a --report folder holding other files (files of the same names are replaced; nothing else is deleted)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More log output."),
) -> None:
    # fmt: on
    """Score re-ID: CMC top-1/5/10 and mAP at window and sequence level.

    Every non-overlapping window is a probe or gallery item (window level); a
    video's mean window feature is one item (sequence level). A probe is never
    matched against its own video.
    """
    setup_logging(verbose)
    from vid2reid.threads import set_threads

    with user_errors():
        set_threads(threads)
    from vid2reid.evaluate import evaluate, evaluate_with_raw, without_features
    from vid2reid.report import format_comparison, format_table
    from vid2reid.store import atomic_write_bytes

    with user_errors():
        cross = gallery_data is not None or len(data) > 1
        side_by_side = baseline is None and (raw or report is not None) and not cross
        check_outputs(json_path, report, force)  # before any work
        if report is not None:
            from vid2reid.report import check_report_deps

            check_report_deps()  # before any work: a missing plotting library is a one-line error
        if side_by_side:
            result = evaluate_with_raw(data[0], run_dir=run, probe=probe, gallery=gallery,
                                       protocol=protocol, runs_dir=runs_dir,
                                       keep_features=report is not None, f=f, device=device)
            table = format_comparison(result)
        else:
            result = evaluate(data if cross else data[0], run_dir=run, baseline=baseline,
                              probe=probe, gallery=gallery, protocol=protocol, f=f, preset=preset,
                              runs_dir=runs_dir, keep_features=report is not None,
                              gallery_data=gallery_data, ensemble=ensemble.strip().lower(),
                              device=device)
            table = format_table(result)
        if json_path is not None:
            check_outputs(json_path, None, force)  # again: it may have appeared meanwhile
            atomic_write_bytes(json_path, (json.dumps(without_features(result), indent=2)
                                           + "\n").encode())
            typer.echo(f"metrics written to {json_path}")
        if report is not None:
            from vid2reid.report import write_report

            index = write_report(result, report, force)
            typer.echo(f"report written to {index} (open it in a browser)")
        typer.echo(table)  # last, so that a script's output ends with the result


def check_outputs(json_path: Path | None, report: Path | None, force: bool) -> None:
    """The output rule (docs/usage.md): refuse a --json or --report that holds what eval did
    not write, unless --force."""
    from vid2reid import safepath

    if json_path is not None:
        safepath.check_output_file(json_path, safepath.json_with("protocol", "f"),
                                   "metrics", force, "--json")
    if report is not None:
        safepath.check_output_folder(report, safepath.EVAL_REPORT, force, "--report")
