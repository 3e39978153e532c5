"""``vid2reid extract``: walking videos -> 3D skeleton store (the pose stage)."""

from __future__ import annotations

from pathlib import Path

import typer

from vid2reid.cli._app import app, setup_logging, user_errors


@app.command("extract")
def extract_cli(
    videos: list[Path] = typer.Argument(..., help="Video files and/or folders (searched recursively)."),
    out: Path = typer.Option(Path("skeletons"), "--out", "-o", help="Skeleton store to write."),
    backend: str = typer.Option("auto", "--backend", "-b",
                                help="auto (default): mmpose when its weights can be had (given "
                                     "with --checkpoint-2d/-3d, cached from an earlier download, "
                                     "or downloadable now), otherwise mediapipe, with a one-line "
                                     "notice; a store keeps the backend it was started with. "
                                     "mmpose: RTMPose-m + 3D lifter (H36M-17 joints). mediapipe: "
                                     "BlazePose (33 joints), weights inside the wheel, fully "
                                     "offline."),
    device: str = typer.Option("cpu", "--device", "-d", help="cpu, cuda or cuda:N (mmpose backend)."),
    workers: int = typer.Option(None, "--workers", "-w", min=1,
                                help="Parallel worker processes, each loading the models "
                                     "(default: one per CPU core, up to 8, for mediapipe; 1 for "
                                     "mmpose, whose torch already uses every core or the GPU)."),
    shard: str = typer.Option(None, "--shard", help="Process only every n-th video, starting "
                              "at the i-th ('i/n'). Not needed to run several processes: any "
                              "number of them (a Slurm array, torchrun ranks) on one --out "
                              "claim disjoint videos by themselves."),
    claim_timeout: float = typer.Option(600.0, "--claim-timeout", help="Seconds after which "
                                        "another machine's claim on a video, no longer "
                                        "refreshed by its process, is taken over (a dead "
                                        "process on this machine is taken over at once)."),
    resume: bool = typer.Option(False, "--resume", help="Take over every claim no process has "
                                "refreshed for two refresh periods (--claim-timeout/5: 2 min "
                                "by default), e.g. after a job was cancelled or a node died, "
                                "instead of waiting --claim-timeout."),
    checkpoint_2d: Path = typer.Option(None, "--checkpoint-2d", help="Local RTMPose-m checkpoint (.pth)."),
    checkpoint_3d: Path = typer.Option(None, "--checkpoint-3d", help="Local lifter checkpoint (.pth)."),
    checkpoint_det: Path = typer.Option(None, "--checkpoint-det",
                                        help="Local RTMDet-m person checkpoint for --boxes rtmdet."),
    lifter: str = typer.Option("videopose3d", "--lifter", "-l",
                               help="videopose3d (243-frame TCN), videopose3d-27, motionbert, or a "
                                    "config file path."),
    boxes: str = typer.Option("bgsub", "--boxes", help="Person boxes for mmpose: bgsub (background "
                              "subtraction, uses the view's bkgrd clip when present), hog, whole, "
                              "or rtmdet (mmdet person detector; needs mmcv with compiled ops)."),
    pattern: str = typer.Option(None, "--pattern", help="Regex with (?P<subject>..) [and condition, "
                                "sequence, view groups] for names that are not CASIA-B's."),
    min_frames: int = typer.Option(40, "--min-frames", help="Drop sequences shorter than this."),
    max_gap: int = typer.Option(5, "--max-gap", help="Interpolate gaps up to this many frames; "
                                "longer gaps split a video into sequences."),
    flip_test: bool = typer.Option(False, "--flip-test/--no-flip-test",
                                   help="RTMPose test-time flip (about 2x slower 2D, as the "
                                        "mmpose config's default)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or bf16 (RTMPose backbone under "
                                  "bfloat16 autocast: faster on CPUs with AVX512-BF16/AMX)."),
    allow_random_weights: bool = typer.Option(False, "--allow-random-weights",
                                              help="mmpose without checkpoints: random weights "
                                                   "(testing only; poses are meaningless)."),
    visualize: bool = typer.Option(False, "--visualize", help="Also write OUT/_visualize/<video>.mp4: "
                                   "each frame with the 2D skeleton drawn, and the 3D skeleton "
                                   "beside it (H.264 where PyAV is installed, else mp4v)."),
    force: bool = typer.Option(False, "--force", help="Write into --out even when it holds "
                               "something else than an extracted store."),
    threads: int = typer.Option(None, "--threads", min=1,
                                help="CPU threads for PyTorch, shared among the --workers "
                                     "processes. Default: one per core; waiting threads sleep "
                                     "instead of spinning (OMP_WAIT_POLICY=PASSIVE unless set)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Estimate 3D skeletons for every video and write the skeleton store.

    CASIA-B names (SSS-CC-NN-VVV.avi, or SSS/CC-NN/VVV/) give subject,
    condition, sequence and view. Re-running skips finished videos; a summary
    lists what failed and why (exit code 1 if anything failed). Backends,
    weights and scaling out: docs/usage.md, "Extract skeletons".
    """
    setup_logging(verbose)
    with user_errors():
        from vid2reid.threads import set_threads

        set_threads(threads)
        from vid2reid.pose.extract import ExtractSettings, parse_shard, run_extract
        from vid2reid.pose.mmpose_backend import MMPoseSettings

        settings = ExtractSettings(
            out=out, backend=backend, boxes=boxes, pattern=pattern, min_frames=min_frames,
            max_gap=max_gap, workers=workers, shard=parse_shard(shard) if shard else None,
            claim_timeout=claim_timeout, resume=resume,
            visualize=visualize, force=force, checkpoint_det=str(checkpoint_det) if checkpoint_det else None,
            mmpose=MMPoseSettings(lifter=lifter, device=device, allow_random_weights=allow_random_weights,
                                  checkpoint_2d=str(checkpoint_2d) if checkpoint_2d else None,
                                  checkpoint_3d=str(checkpoint_3d) if checkpoint_3d else None,
                                  flip_test=flip_test, precision=precision))
        summary = run_extract(videos, settings)
        for line in summary.lines():
            typer.echo(line)
        if summary.failed:
            raise typer.Exit(1)
