"""``vid2reid render-samples`` and ``vid2reid import-ground-truth``: self-made CASIA-B style clips."""

from __future__ import annotations

from pathlib import Path

import typer

from vid2reid.cli._app import app, setup_logging, user_errors


@app.command("render-samples")
def render_samples(
    out: Path = typer.Argument(..., help="Folder for the clips (CASIA-B names) and .gt.npz sidecars."),
    subjects: int = typer.Option(10, "--subjects", help="Training identities, numbered 001, 002, ..."),
    test_subjects: int = typer.Option(6, "--test-subjects", min=0,
                                      help="Test identities (new people), numbered from 075: "
                                           "test subjects under both CASIA-B protocols."),
    views: str = typer.Option("090", "--views", help="Comma-separated view angles (000..180)."),
    frames: int = typer.Option(64, "--frames", help="Frames per clip (25 fps)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same bytes."),
    ground_truth: Path = typer.Option(None, "--ground-truth",
                                      help="Also import the sidecars into this skeleton store."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Render walkers (nm-01..06, bg-01..02, cl-01..02 per subject and view) with ground truth.

    The defaults make the bundled sample_videos/ (10 training and 6 test
    identities, side view, 64 frames, seed 0).
    """
    setup_logging(verbose)
    with user_errors():
        from vid2reid.render.samples import encoder_name, import_ground_truth, make_samples

        written = make_samples(out, n_subjects=subjects, views=views.split(","), frames=frames,
                               seed=seed, n_test_subjects=test_subjects)
        typer.echo(f"wrote {len(written)} videos to {out} (encoder {encoder_name()})")
        if ground_truth is not None:
            records = import_ground_truth(out, ground_truth)
            typer.echo(f"imported {len(records)} ground-truth sequences into {ground_truth}")


@app.command("import-ground-truth")
def import_gt(
    samples: Path = typer.Argument(..., help="Folder with SSS-CC-NN-VVV.gt.npz sidecars."),
    out: Path = typer.Option(Path("skeletons-gt"), "--out", help="Skeleton store to write."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Turn rendered clips' ground-truth joints into a skeleton store (the reference run)."""
    setup_logging(verbose)
    with user_errors():
        from vid2reid.render.samples import import_ground_truth

        records = import_ground_truth(samples, out)
        typer.echo(f"imported {len(records)} ground-truth sequences into {out}")
