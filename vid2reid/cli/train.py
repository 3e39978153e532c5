"""``vid2reid train``: learn a skeleton re-ID model from a store, without identity labels."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from vid2reid.cli._app import GroupedOptions, app, setup_logging, user_errors


# fmt: off
@app.command("train", cls=GroupedOptions)
def train_cli(
    data: List[Path] = typer.Option([Path("skeletons")], "--data", "-d", help="Skeleton store to learn from (written by 'vid2reid extract'). --method ms-clr takes it more than once: stores of the same recordings in different joint layouts (e.g. made with 'vid2reid convert')."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory to write. Default: the unfinished run in runs/ with the same settings and data, which this continues, else a new runs/<date-time>."),
    preset: Optional[str] = typer.Option(None, "--preset", "-p", help="Reproduce the SimMC paper on a data set: its settings and DBSCAN pseudo-labels (casia-b, ks20, kgbd, ias-a, ias-b, biwi-w, biwi-s; any case). Default: none, the label-free defaults (pseudo-labels from walks grouped into people, nothing tuned per data set; give --f)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="Number of epochs (one clustering round + one pass each). Default: 30."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed and data give the same model."),
    method: str = typer.Option("simmc", "--method", "-m", help="Training method: simmc, himpc, sm-sge (self-supervised multi-scale graph reconstruction; no clustering) or ms-clr (one encoder for several joint layouts; several --data)."),
    init: Optional[Path] = typer.Option(None, "--init", help="SimMC: start from the encoder of this trained run and fine-tune it with SimMC's losses ('X + SimMC'); from an sm-sge run SimMC uses SM-SGE's graph encoder.", rich_help_panel="SimMC settings"),
    ablation: str = typer.Option("mpc+mic", "--ablation", help="SimMC variant: npc (no mask, one view), mpc (no MIC), mpc+mic (full)."),
    protocol: str = typer.Option("simmc", "--protocol", help="Which sequences train when the store has no split column: simmc (subjects 001-062), opengait (001-074), all (every sequence; non-standard)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto (GPU when there is one)."),
    f: Optional[int] = typer.Option(None, "--f", help="Frames per window: 40 for CASIA-B-style video (default), 6 for Kinect data (as the paper's presets)."),
    x: Optional[int] = typer.Option(None, "--x", help="Frames hidden from each window in each masked view. Default: f/4 rounded (the preset's value with --preset)."),
    q: Optional[int] = typer.Option(None, "--q", help="Masked views per window (1 or 2)."),
    tau: Optional[float] = typer.Option(None, "--tau", help="Temperature of the prototype contrast."),
    pseudo_labels: Optional[str] = typer.Option(None, "--pseudo-labels", help="Where the training classes come from: people (default without --preset: every recording is one person, and walks are grouped into people by their features and body proportions, the number of people found from the data), walk-groups (walks that are each other's nearest neighbours are grouped), walk-chains (every walk joins its nearest walk's group, either way: for many walks per person, e.g. CASIA-B's 110), walks (every walk its own class), clusters (SimMC's DBSCAN over windows; the presets' choice)."),
    walk_warmup: Optional[int] = typer.Option(None, "--walk-warmup", help="people, walk-groups, walk-chains: epochs that train with every walk its own class before walks are grouped. Default: 2."),
    unit_features: Optional[bool] = typer.Option(None, "--unit-features/--no-unit-features", help="Score the model's features at unit length (cosine, as training compares them). Default: on without --preset, off with one (as the paper)."),
    eps: Optional[float] = typer.Option(None, "--eps", help="Clustering radius (0-1) of --pseudo-labels clusters; raise it if training finds no cluster."),
    min_samples: Optional[int] = typer.Option(None, "--min-samples", help="Windows needed to start a cluster (--pseudo-labels clusters)."),
    lam: Optional[float] = typer.Option(None, "--lambda", help="Weight of the intra-sequence (MIC) loss, 0-1."),
    windows: Optional[str] = typer.Option(None, "--windows", help="How training windows are cut, every f/2 frames within a walk: all (from every start offset, as the SimMC authors cut KS20/IAS/BIWI: about 2 windows per frame), shifted (a fresh random start offset per walk each epoch: f times fewer windows, every start frame seen over the epochs), fixed (offset 0 only; vid2reid before 2026-11-30), auto (all while that gives at most 60,000 windows, else shifted; default)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate. Default: 3.5e-4."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Windows per training step. Default: 256."),
    k1: Optional[int] = typer.Option(None, "--k1", help="Neighbours of the k-reciprocal distance (see --k1-reading). Default: 20."),
    k2: Optional[int] = typer.Option(None, "--k2", help="Neighbours averaged in query expansion. Default: 6."),
    k1_reading: Optional[str] = typer.Option(None, "--k1-reading", help="What --k1 means: reference (as the SimMC authors' code computes it, k1 neighbours including the window itself; the presets were tuned with it; default) or zhong (the re-ranking paper's k1 neighbours plus itself)."),
    hidden: Optional[int] = typer.Option(None, "--hidden", help="Width of the encoder. Default: 256."),
    stop_ari: Optional[float] = typer.Option(None, "--stop-ari", help="Stop early once the pseudo-labels stop changing (agreement between epochs, 0-1, e.g. 0.95). Off by default."),
    heads: Optional[int] = typer.Option(None, "--heads", help="Hi-MPC: meta heads per level. Default: 8.", rich_help_panel="Hi-MPC settings"),
    hsm: bool = typer.Option(True, "--hsm/--no-hsm", help="Hi-MPC: hard skeleton mining frame weights; --no-hsm weighs frames uniformly (ablation).", rich_help_panel="Hi-MPC settings"),
    levels: Optional[str] = typer.Option(None, "--levels", help="Hi-MPC: levels to use, comma-separated from joint,component,limb (ablation). Default: all three.", rich_help_panel="Hi-MPC settings"),
    joint_weighting: Optional[str] = typer.Option(None, "--joint-weighting", help="Hi-MPC: mean (every level averaged over its heads) or reference (the reference code's joint level summed over heads, for reproduction).", rich_help_panel="Hi-MPC settings"),
    head_logits: Optional[str] = typer.Option(None, "--head-logits", help="Hi-MPC: how meta heads score frames against prototypes: cosine (divided by --tau; default) or reference (the authors' raw dot product / sqrt(H), for reproduction).", rich_help_panel="Hi-MPC settings"),
    graph_dim: Optional[int] = typer.Option(None, "--graph-dim", help="SM-SGE: feature size of every graph node. Default: 8.", rich_help_panel="SM-SGE settings"),
    graph_heads: Optional[int] = typer.Option(None, "--graph-heads", help="SM-SGE: graph attention heads per scale (averaged). Default: 8.", rich_help_panel="SM-SGE settings"),
    graph_lambda: Optional[float] = typer.Option(None, "--graph-lambda", help="SM-SGE: weight of the cross-scale (collaborative) relations, 0-1. Default: 1.", rich_help_panel="SM-SGE settings"),
    cross: Optional[str] = typer.Option(None, "--cross", help="MS-CLR: how a window's conventions are pulled together: mutual (every pair towards each other, SimSiam both ways; default) or anchor (the other conventions learn to predict the first --data store's features, which are not pulled towards them).", rich_help_panel="MS-CLR settings"),
    part_map: Optional[Path] = typer.Option(None, "--part-map", help="Hi-MPC and SM-SGE: JSON/YAML part map for a joint layout without a built-in one.", rich_help_panel="Hi-MPC settings"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for PyTorch. Default: one per core; waiting threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE unless set), so other jobs on the same cores slow it down no more than they would one thread."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the run directory's checkpoint if it has one."),
    force: bool = typer.Option(False, "--force", help="Train into --out even when it holds something else than a run (nothing training did not write is deleted)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (only on a terminal: in a log file the per-epoch lines say the same)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More log output."),
) -> None:
    # fmt: on
    """Train a skeleton re-ID model on a skeleton store, without identity labels.

    Only the training sequences are used (the store's split column, or the
    protocol's subject range); a store with neither, such as your own clips
    named as you like, trains on every walk (no labels are needed). The run directory gets config.json (every value
    used), checkpoints, a log, and the final model; runs/LATEST points to it so
    that 'vid2reid eval' finds it. Re-running the same command resumes.
    """
    setup_logging(verbose)
    from vid2reid.threads import set_threads

    with user_errors():
        set_threads(threads)
    from vid2reid.settings import make_config
    from vid2reid.protocols import warn_if_nothing_to_test
    from vid2reid.runs import default_run_dir
    from vid2reid.train import classes_word, train

    with user_errors():
        cfg = make_config(preset, method=method, ablation=ablation, epochs=epochs, seed=seed,
                          protocol=protocol.strip().lower(), device=device.strip().lower(), f=f,
                          x=x, q=q, tau=tau, eps=eps, min_samples=min_samples, lam=lam, lr=lr,
                          batch_size=batch_size, k1=k1, k2=k2,
                          k1_reading=k1_reading.strip().lower() if k1_reading else None,
                          windows=windows.strip().lower() if windows else None,
                          pseudo_labels=pseudo_labels.strip().lower() if pseudo_labels else None,
                          walk_warmup=walk_warmup, unit_features=unit_features,
                          hidden=hidden, stop_ari=stop_ari,
                          himpc_heads=heads, himpc_hsm=hsm,
                          himpc_levels=tuple(v.strip().lower() for v in levels.split(",") if v.strip())
                          if levels else None,
                          himpc_joint_weighting=joint_weighting,
                          himpc_logits=head_logits.strip().lower() if head_logits else None,
                          himpc_part_map=str(part_map.resolve()) if part_map else None,
                          init=str(init) if init else None, smsge_dim=graph_dim,
                          smsge_heads=graph_heads, smsge_lambda=graph_lambda,
                          msclr_cross=cross.strip().lower() if cross else None)
        run_dir = out if out is not None else default_run_dir(Path("runs"), cfg, data, resume)
        warn_if_nothing_to_test(data[0], cfg.protocol)
        result = train(cfg, data[0] if len(data) == 1 else data, run_dir, resume=resume,
                       progress=progress and sys.stderr.isatty(), force=force)
        if os.environ.get("RANK", "0") not in ("", "0"):
            return  # torchrun's other ranks: rank 0 reports the run it wrote
        last = result.history[-1] if result.history else {}
        typer.echo(f"trained {result.epochs_done} epoch(s) -> {result.run_dir}"
                   + (f" (final loss {last['loss']:.4f}"
                      + (f", {last['clusters']} {classes_word(cfg)})" if "clusters" in last
                         else ")")
                      if last else ""))
        if result.latest is None:
            typer.echo(f"note: {run_dir.parent} is not a folder of runs, so no LATEST file was "
                       f"written there; pass --run {run_dir} to 'vid2reid eval'")
