"""``vid2reid export``: a trained run as one ONNX or TorchScript file, to embed walks without
vid2reid (onnxruntime alone, or torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vid2reid.cli._app import app, setup_logging, user_errors


# fmt: off
@app.command("export")
def export_cli(
    out: Path = typer.Option(..., "--out", "-o", help="File to write (e.g. model.onnx); its settings go next to it as FILE.json.", dir_okay=False),
    fmt: str = typer.Option("onnx", "--format", help="onnx (runs with onnxruntime, no torch; needs the onnx package to write) or torchscript (torch.jit.load)."),
    run: Optional[Path] = typer.Option(None, "--run", "-r", help="Run to export: a run folder written by 'vid2reid train', a folder of runs (its latest finished run) or a LATEST file. Default: the latest run in --runs-dir."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where runs live; its LATEST file names the default run."),
    force: bool = typer.Option(False, "--force", help="Replace an --out file (or its FILE.json) that an earlier 'vid2reid export' did not write."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More log output."),
) -> None:
    # fmt: on
    """Export a run: windows (N, f, J, 3) float32, cut from a store's joints as stored, in;
    features (N, D) out, as the run's own embedder gives them (normalisation inside).

    A walk's feature is the mean of its non-overlapping f-frame windows' features from
    frame 0; docs/usage.md shows it with onnxruntime alone.
    """
    setup_logging(verbose)
    with user_errors():
        from vid2reid.threads import set_threads

        set_threads()
        from vid2reid.run import open_run
        from vid2reid.run.export import export_run

        opened = open_run(run, runs_dir)
        info = export_run(opened, fmt, out, force=force)
        typer.echo(f"{info['format']} model of run {opened.path} written to {out}: windows "
                   f"(N, {info['f']}, {info['joints']}, 3) -> features (N, {info['features']})"
                   f"{', unit length' if info['unit_features'] else ''}; settings in {out}.json")
