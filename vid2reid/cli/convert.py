"""``vid2reid convert STORE --layout NAME --out STORE2``: a store in another joint layout."""

from __future__ import annotations

from pathlib import Path

import typer

from vid2reid.cli._app import app, show_progress, user_errors


# fmt: off
@app.command("convert")
def convert_cli(
    store: Path = typer.Argument(..., help="Skeleton store to convert (the directory with manifest.csv)."),
    layout: str = typer.Option(..., "--layout", "-l", help="Target joint layout: h36m-17, coco-17, blazepose-33, kinect-v1-20, kinect-v2-25 or casia-14."),
    out: Path = typer.Option(..., "--out", "-o", help="Store to write (same paths and manifest rows). Re-running skips the sequences already converted."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (only on a terminal)."),
    force: bool = typer.Option(False, "--force", help="Write into --out even when it holds something else than an earlier conversion (nothing convert did not write is deleted)."),
) -> None:
    # fmt: on
    """Map a store into another joint layout, joint by joint where the joints correspond.

    Joints with the same meaning are copied exactly (Kinect hip_center -> H36M pelvis); a joint
    the source lacks is derived where the anatomy allows (pelvis = mid-point of the hips, thorax
    = mid-point of the shoulders, ...) and otherwise marked missing (listed in the manifest's
    'missing' column; it sits on the root joint, i.e. reads 0 after normalisation). Pairs where
    too little corresponds are refused. See docs/convert.md.
    """
    from vid2reid.convert import convert_store

    with user_errors():
        summary = convert_store(store, layout.strip().lower(), out,
                                progress=show_progress(progress), force=force)
    for line in summary.lines():
        typer.echo(line)
