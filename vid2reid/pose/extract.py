"""Batch driver for ``vid2reid extract``: videos in, skeleton store out.

Per video: decode (background thread) -> person boxes -> pose backend ->
gap filling / splitting -> one ``.npz`` per sequence (atomic) -> a small
``.extract/<stem>.json`` marker saying the video is finished (also when no
person was found), so a re-run skips it. Failed videos get no marker and are
retried next time. Any number of processes (a Slurm array of any form, torchrun's ranks,
hand-started ones) share one ``--out``: each claims a video before extracting it
(vid2reid.pose.claims), so they take disjoint videos and every video is done once;
``--shard i/n`` additionally restricts a process to every n-th video. ``--workers`` runs
videos in parallel processes. Each process appends the records of the videos it finished to
its own manifest fragment (``.extract/parts/``); at its end it assembles ``manifest.csv``
from all fragments, without re-reading finished videos, so the last process to finish
leaves the complete manifest: no merge step.

Backend ``auto`` (the default) is MMPose when its weights can be had (local
checkpoints, torch's hub cache, or a reachable download URL) and otherwise
MediaPipe BlazePose, whose weights ship in its wheel, with a one-line notice;
a store that already holds extractions keeps the backend it was made with, so
one store never mixes joint layouts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import multiprocessing as mp

import numpy as np

from vid2reid.errors import ConfigError, PoseError, Vid2ReidError
from vid2reid.pose.boxes import BOX_METHODS, make_box_finder
from vid2reid.pose.claims import CLAIM_DIR, DEFAULT_TIMEOUT_S, Claims
from vid2reid.pose.mediapipe_backend import MediaPipeSettings
from vid2reid.pose.mmpose_backend import MMPoseSettings
from vid2reid.pose.names import (VideoName, background_clip_for, background_clips,
                                 compile_pattern, list_videos, parse_video_name)
from vid2reid.pose.video import FrameReader
from vid2reid.store import Record, append_fragment, assemble_manifest, atomic_write_bytes, save_sequence

log = logging.getLogger(__name__)

BACKENDS = ("auto", "mmpose", "mediapipe")
DOWNLOAD_CHECK_TIMEOUT_S = 10.0
MARKER_DIR = ".extract"
PARTS_DIR = "parts"  # OUT/.extract/parts/: one manifest fragment per extraction process
VISUALIZE_DIR = "_visualize"


@dataclass(frozen=True)
class ExtractSettings:
    """Every option of one extraction run."""

    out: Path = Path("skeletons")
    backend: str = "auto"  # resolve_backend() picks mmpose or mediapipe
    boxes: str = "bgsub"
    pattern: str | None = None
    min_frames: int = 40
    max_gap: int = 5
    workers: int | None = None  # None: default_workers(backend)
    shard: tuple[int, int] | None = None  # (index, count): only every count-th video; None: all
    claim_timeout: float = DEFAULT_TIMEOUT_S  # take over another machine's claim not refreshed for this long
    resume: bool = False  # take over every claim not being refreshed (earlier runs' processes)
    visualize: bool = False
    checkpoint_det: str | None = None  # RTMDet weights for --boxes rtmdet
    mmpose: MMPoseSettings = field(default_factory=MMPoseSettings)
    mediapipe: MediaPipeSettings = field(default_factory=MediaPipeSettings)
    force: bool = False  # write into an --out that holds something else than an extract store


@dataclass(frozen=True)
class VideoOutcome:
    """What happened to one video."""

    video: str
    status: str  # "done", "no-person", "too-short", "skipped", "elsewhere" or "failed"
    frames: int = 0
    sequences: int = 0
    message: str = ""
    seconds: float = 0.0
    records: tuple[Record, ...] = field(default=(), compare=False, repr=False)  # what it wrote


@dataclass(frozen=True)
class ExtractSummary:
    """Outcomes of every video of this shard, input problems, and the rebuilt manifest."""

    outcomes: list[VideoOutcome]
    problems: list[str]
    records: list[Record]
    shard: tuple[int, int]
    seconds: float
    backend: str = ""
    visualized: str = ""  # folder of the --visualize videos written by this run ("" = none)
    task: str = ""  # this process among others ('shard 0/1', 'rank 1/4', 'slurm task 6')
    backgrounds: int = 0  # CASIA-B background clips in the folders: no walk, not extracted

    def count(self, *statuses: str) -> int:
        return sum(o.status in statuses for o in self.outcomes)

    @property
    def failed(self) -> int:
        return self.count("failed") + len(self.problems)

    @property
    def frames(self) -> int:
        return sum(o.frames for o in self.outcomes if o.status != "skipped")

    def lines(self) -> list[str]:
        """Human-readable summary: counts, then one line per failure or empty result."""
        fps = self.frames / self.seconds if self.seconds > 0 else 0.0
        out = [f"{self.task or f'shard {self.shard[0]}/{self.shard[1]}'}"
               f"{f' ({self.backend})' if self.backend else ''}: {len(self.outcomes)} videos: "
               f"{self.count('done')} done, {self.count('skipped')} skipped (already finished), "
               f"{self.count('elsewhere')} being extracted by other processes, "
               f"{self.count('no-person', 'too-short')} without a usable person, "
               f"{self.failed} failed; {self.frames} frames in {self.seconds:.1f} s ({fps:.1f} frames/s); "
               f"store has {len(self.records)} sequences"]
        if self.backgrounds:
            out.append(f"{self.backgrounds} background clip(s) (*-bkgrd-*) in the folders: "
                       f"no walk, used only as backgrounds, not extracted")
        if self.visualized:
            out.append(f"videos with the 2D and 3D skeletons drawn: {self.visualized}/")
        out += [f"failed: {p}" for p in self.problems]
        out += [f"{o.status}: {o.message}" for o in self.outcomes
                if o.status in ("failed", "no-person", "too-short")]
        return out


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text}: need 0 <= i < n")
    return i, n


def task_from_env(env: dict[str, str] | None = None) -> tuple[str, str]:
    """This process among others, for logs and file names: (words, file-name part).

    torchrun's RANK/WORLD_SIZE or a Slurm array task's id; ("", "") otherwise. Only a label:
    which videos a process extracts is decided by claims, never by these numbers (a stepped
    array, --array=0-8:2, has task ids 0..8 for 5 tasks; a list, --array=1,4,7, has gaps).
    """
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return f"rank {env['RANK']}/{env['WORLD_SIZE']}", f"rank{env['RANK']}-of-{env['WORLD_SIZE']}"
    if "SLURM_ARRAY_TASK_ID" in env:
        job = env.get("SLURM_ARRAY_JOB_ID", "")
        return (f"slurm task {env['SLURM_ARRAY_TASK_ID']}" + (f" of array job {job}" if job else ""),
                f"slurm{('-' + job) if job else ''}-task{env['SLURM_ARRAY_TASK_ID']}")
    return "", ""


def shard_items(items: list, index: int, count: int) -> list:
    """Every ``count``-th item starting at ``index``: the shards partition the sorted list."""
    return items[index::count]


def marker_path(out: Path, name: VideoName) -> Path:
    return Path(out) / MARKER_DIR / f"{name.stem}.json"


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _store_backend(out: Path) -> str | None:
    """The backend an existing store was extracted with (from its first video marker)."""
    folder = Path(out) / MARKER_DIR
    if not folder.is_dir():
        return None
    for path in sorted(folder.rglob("*.json")):  # CASIA-B names put markers under .extract/SSS/
        if path.name.startswith("summary-"):
            continue
        marker = _read_marker(path)
        if marker and marker.get("backend") in ("mmpose", "mediapipe"):
            return str(marker["backend"])
    return None


def _weights_problem(config: str, checkpoint: str | None) -> str | None:
    """Why the MMPose model ``config`` cannot get its weights here (None: it can).

    A local checkpoint, a file in torch's hub cache (where the first download
    goes) or a download URL that answers within a few seconds all count.
    """
    import urllib.parse
    import urllib.request

    from vid2reid.pose.weights import resolve_config

    if checkpoint:
        return None if Path(checkpoint).is_file() else f"{checkpoint} does not exist"
    path = resolve_config(config)
    try:
        import warnings

        with warnings.catch_warnings():  # mmengine imports the deprecated pkg_resources
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            from mmengine.config import Config

        url = Config.fromfile(str(path)).get("load_from")
    except Exception as exc:  # a broken config: let the real backend report it
        log.debug("%s: cannot read load_from (%s)", path, exc)
        return None
    if not url:
        return f"{path.stem} has no checkpoint URL"
    if "://" not in str(url):
        return None if Path(url).is_file() else f"{url} does not exist"
    import torch.hub

    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urllib.parse.urlparse(url).path).name
    if cached.is_file():
        return None
    try:
        req = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(req, timeout=DOWNLOAD_CHECK_TIMEOUT_S):
            return None
    except Exception as exc:
        host = urllib.parse.urlparse(url).netloc
        reason = getattr(exc, "reason", exc)
        return f"cannot download the {path.stem} checkpoint from {host} ({reason})"


def _mmpose_problem(settings: ExtractSettings) -> str | None:
    """Why ``auto`` cannot use MMPose here (None: it can)."""
    import importlib.util

    missing = [m for m in ("mmpose", "mmengine", "mmcv") if importlib.util.find_spec(m) is None]
    if missing:
        return f"the MMPose stack is not installed (no {', '.join(missing)})"
    m = settings.mmpose
    if m.allow_random_weights:
        return None
    checks = [(m.pose2d, m.checkpoint_2d), (m.lifter, m.checkpoint_3d)]
    if settings.boxes == "rtmdet":
        checks.append(("rtmdet-m-person", settings.checkpoint_det))
    for config, checkpoint in checks:
        problem = _weights_problem(config, checkpoint)
        if problem:
            return problem
    return None


def resolve_backend(settings: ExtractSettings) -> ExtractSettings:
    """Settings with ``backend="auto"`` made concrete; other backends are returned as they are.

    ``auto``: the backend the store at ``settings.out`` was extracted with, if
    any; else MMPose when its weights can be had; else MediaPipe, with a
    one-line warning saying why and how to get MMPose.
    """
    if settings.backend != "auto":
        return settings
    previous = _store_backend(settings.out)
    if previous:
        log.info("%s was extracted with --backend %s: continuing with it", settings.out, previous)
        return replace(settings, backend=previous)
    problem = _mmpose_problem(settings)
    if problem is None:
        return replace(settings, backend="mmpose")
    how = ("install the [pose] extra, see README.md" if "not installed" in problem
           else "--checkpoint-2d/--checkpoint-3d FILE, or run once online")
    log.warning("notice: MMPose cannot be used (%s); using the offline MediaPipe backend instead "
                "(to use MMPose: %s)", problem, how)
    return replace(settings, backend="mediapipe")


def make_backend(settings: ExtractSettings):
    """Build the pose backend named in the settings (loads models once per process)."""
    if settings.backend == "mmpose":
        from vid2reid.pose.mmpose_backend import MMPoseBackend

        dev = settings.mmpose.device
        if dev.startswith("cuda") and "LOCAL_RANK" in os.environ and dev == "cuda":
            settings = replace(settings, mmpose=replace(settings.mmpose,
                                                        device=f"cuda:{os.environ['LOCAL_RANK']}"))
        return MMPoseBackend(settings.mmpose)
    if settings.backend == "mediapipe":
        from vid2reid.pose.mediapipe_backend import MediaPipeBackend

        return MediaPipeBackend(settings.mediapipe)
    if settings.backend == "auto":
        return make_backend(resolve_backend(settings))
    raise ConfigError(f"unknown --backend {settings.backend!r}; choose one of {', '.join(BACKENDS)}")


def make_detector(settings: ExtractSettings):
    """The mmdet person detector for ``--boxes rtmdet`` (None for the other box methods)."""
    if settings.boxes != "rtmdet" or settings.backend != "mmpose":
        return None
    from vid2reid.pose.boxes import DetectorBoxes

    return DetectorBoxes(settings.checkpoint_det, settings.mmpose.device,
                         allow_random_weights=settings.mmpose.allow_random_weights)


def extract_video(video: Path, root: Path | None, backend, settings: ExtractSettings,
                  detector=None) -> VideoOutcome:
    """Process one video and write its sequences and marker; raises Vid2ReidError on bad input."""
    t0 = time.perf_counter()
    name = parse_video_name(video, root, settings.pattern)
    background = background_clip_for(video, name) if settings.boxes == "bgsub" else None
    reader = FrameReader(video)
    boxes = make_box_finder(settings.boxes, video, background, detector=detector) \
        if backend.name == "mmpose" else None
    poses = backend.estimate_video(reader, boxes, max_gap=settings.max_gap,
                                   min_frames=settings.min_frames)
    detected = float(poses.valid.mean()) if poses.frames else 0.0
    base_meta = dict(subject=name.subject, condition=name.condition, sequence=name.sequence,
                     view=name.view, name_format=name.name_format, source=str(video),
                     video_frames=poses.frames, video_detected_fraction=round(detected, 4),
                     fps=reader.info.fps, truncated=reader.truncated, **backend.describe())
    out = Path(settings.out)
    written: list[str] = []
    records: list[Record] = []
    multi = len(poses.sequences) > 1
    for seq in poses.sequences:
        rel = f"{name.stem}.s{seq.start:05d}.npz" if multi else f"{name.stem}.npz"
        # "detected" (per frame, False = interpolated) is an array, so it stays out of the manifest
        # the 2D keypoints (pixels, NaN where not detected) let 'match --report' draw the walk
        keypoints_2d = poses.keypoints_2d[seq.start:seq.start + len(seq.joints)].astype(np.float32)
        records.append(save_sequence(
            out, rel, seq.joints, poses.layout, start_frame=seq.start, detected=seq.detected,
            keypoints_2d=keypoints_2d, detected_fraction=round(float(seq.detected.mean()), 4),
            mean_score=round(seq.mean_score, 4), **base_meta))
        written.append(rel)
    if settings.visualize:
        from vid2reid.pose.visualize import draw_video

        draw_video(video, poses, out / VISUALIZE_DIR / f"{name.stem}.mp4")
    if written:
        status, msg = "done", f"{video}: {len(written)} sequence(s)"
    elif not poses.valid.any():
        status, msg = "no-person", f"{video}: no person found in any of {poses.frames} frames"
    else:
        status, msg = "too-short", (f"{video}: person found in {int(poses.valid.sum())} of "
                                    f"{poses.frames} frames, but no run reaches --min-frames "
                                    f"{settings.min_frames}")
    marker = dict(status=status, video=str(video), backend=backend.name, layout=poses.layout,
                  frames=poses.frames, detected_fraction=round(detected, 4), sequences=written,
                  truncated=reader.truncated)
    atomic_write_bytes(marker_path(out, name), json.dumps(marker, indent=1).encode())
    return VideoOutcome(str(video), status, poses.frames, len(written), msg, time.perf_counter() - t0,
                        tuple(records))


def _safe_extract(video: Path, root: Path | None, backend, settings: ExtractSettings,
                  detector=None) -> VideoOutcome:
    t0 = time.perf_counter()
    try:
        return extract_video(video, root, backend, settings, detector)
    except Vid2ReidError as exc:
        return VideoOutcome(str(video), "failed", message=str(exc), seconds=time.perf_counter() - t0)
    except Exception as exc:  # a bug or a library crash on this video: report it, keep going
        log.debug("%s", traceback.format_exc())
        return VideoOutcome(str(video), "failed", message=f"{video}: unexpected error "
                            f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - t0)


# one backend per worker process, built once by the pool initializer
_WORKER: dict = {}


def _init_worker(settings: ExtractSettings, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING)
    _WORKER["settings"] = settings
    try:
        _WORKER["backend"] = make_backend(settings)
        _WORKER["detector"] = make_detector(settings)
    except Vid2ReidError as exc:  # reported by the first task instead of breaking the pool
        _WORKER["error"] = exc


def _worker_run(video: str, root: str | None) -> VideoOutcome:
    if "error" in _WORKER:
        raise _WORKER["error"]
    return _safe_extract(Path(video), Path(root) if root else None, _WORKER["backend"],
                         _WORKER["settings"], _WORKER["detector"])


def _is_finished(out: Path, name: VideoName, backend: str) -> bool:
    marker = _read_marker(marker_path(out, name))
    return marker is not None and marker.get("backend") == backend


def default_workers(backend: str, env: dict[str, str] | None = None) -> int:
    """Worker processes when none are asked for.

    MediaPipe uses about one core per process, so it gets one per core (at most
    8, shared among the torchrun ranks of one machine): on 2 cores the 96 sample
    clips took 166 s with 1 worker and 91 s with 2. MMPose stays in one process:
    its torch already uses every core, or the GPU.
    """
    if backend != "mediapipe":
        return 1
    env = os.environ if env is None else env
    per_machine = int(env.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, min(8, (os.cpu_count() or 1) // max(1, per_machine)))


def run_extract(inputs: list[Path], settings: ExtractSettings) -> ExtractSummary:
    """Extract every (not yet finished) video of this shard and rebuild the manifest.

    Bad videos are reported in the summary and do not stop the batch. Raises
    PoseError only when there is nothing at all to process, or the backend
    cannot be built (then a store folder this call created is removed again).
    """
    t0 = time.perf_counter()
    if settings.backend not in BACKENDS:
        raise ConfigError(f"unknown --backend {settings.backend!r}; choose one of {', '.join(BACKENDS)}")
    if settings.boxes not in BOX_METHODS:
        raise ConfigError(f"unknown --boxes {settings.boxes!r}; choose one of {', '.join(BOX_METHODS)}")
    if settings.pattern:
        compile_pattern(settings.pattern)
    if settings.min_frames < 1:
        raise ConfigError("--min-frames must be at least 1")
    if settings.claim_timeout <= 0:
        raise ConfigError("--claim-timeout must be more than 0 seconds")
    shard = settings.shard or (0, 1)
    videos, problems = list_videos(inputs)
    if not videos:
        raise PoseError("; ".join(problems) if problems else "no videos given")
    mine = shard_items(videos, *shard)
    settings = resolve_backend(settings)
    out = Path(settings.out)
    # processes of one extraction share the store (claims per video, manifest assembly is
    # locked), so the folder is checked, not locked: a folder of another kind is refused
    # unless --force
    from vid2reid.safepath import EXTRACT, check_output_folder

    check_output_folder(out, EXTRACT, settings.force)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        summary = _extract_shard(mine, problems, shard, settings, t0)
        return replace(summary, backgrounds=len(background_clips(inputs)))
    except BaseException:
        if created and not any(p.is_file() for p in out.rglob("*")):
            shutil.rmtree(out, ignore_errors=True)  # a run that wrote nothing leaves nothing
        raise


def _process_names(settings: ExtractSettings) -> tuple[str, str]:
    """This process in words and as a file-name part (summary, manifest fragment)."""
    if settings.shard is not None:
        i, n = settings.shard
        return f"shard {i}/{n}", f"shard{i}-of-{n}"
    words, part = task_from_env()
    return (words, part) if words else ("shard 0/1", "shard0-of-1")


def _extract_shard(mine: list, problems: list[str], shard: tuple[int, int],
                   settings: ExtractSettings, t0: float) -> ExtractSummary:
    from tqdm import tqdm

    out = Path(settings.out)
    task, task_file = _process_names(settings)
    outcomes: list[VideoOutcome] = []
    todo = []
    for video, root in mine:
        try:
            name = parse_video_name(video, root, settings.pattern)
        except Vid2ReidError as exc:
            outcomes.append(VideoOutcome(str(video), "failed", message=str(exc)))
            continue
        if _is_finished(out, name, settings.backend):
            outcomes.append(VideoOutcome(str(video), "skipped", message=f"{video}: already finished"))
        else:
            todo.append((video, root, name))
    skipped = len(outcomes)  # already finished, or names that do not parse
    log.info("%s: %d videos, %d not finished yet, %d already finished", task, len(mine),
             len(todo), sum(o.status == "skipped" for o in outcomes))
    n_workers = min(settings.workers or default_workers(settings.backend), max(1, len(todo)))
    fragment = out / MARKER_DIR / PARTS_DIR / f"{task_file}-{socket.gethostname()}-{os.getpid()}.jsonl"
    claims = Claims(out / MARKER_DIR / CLAIM_DIR, owner=task, timeout_s=settings.claim_timeout,
                    resume=settings.resume)
    frames = 0
    # A progress bar on a terminal; in a log file (not a TTY) one line per tenth of the work.
    interactive = sys.stderr.isatty()
    bar = tqdm(total=len(todo), unit="video", desc="extract", dynamic_ncols=True,
               disable=not todo or not interactive)
    t_run = time.perf_counter()
    every = max(1, len(todo) // 10)
    elsewhere: list[tuple] = []  # claimed by another process when we looked

    def claim_next(queue: list) -> tuple | None:
        """The next video of ``queue`` this process claims (None: none left)."""
        while queue:
            video, root, name = job = queue.pop(0)
            if _is_finished(out, name, settings.backend):
                record(VideoOutcome(str(video), "skipped", message=f"{video}: finished by "
                                    f"another process"))
            elif not claims.try_claim(name.stem):
                elsewhere.append(job)
            elif _is_finished(out, name, settings.backend):  # finished just before our claim
                claims.release(name.stem)
                record(VideoOutcome(str(video), "skipped", message=f"{video}: finished by "
                                    f"another process"))
            else:
                return job
        return None

    def finish(job: tuple, outcome: VideoOutcome) -> None:
        append_fragment(fragment, list(outcome.records))
        claims.release(job[2].stem, failed=outcome.status == "failed")
        record(outcome)

    def record(outcome: VideoOutcome) -> None:
        nonlocal frames
        outcomes.append(outcome)
        frames += outcome.frames
        if outcome.status == "failed":
            tqdm.write(f"failed: {outcome.message}", file=sys.stderr)
        fps = frames / max(time.perf_counter() - t_run, 1e-9)
        bar.set_postfix_str(f"{fps:.1f} frames/s")
        bar.update(1)
        done = len(outcomes) - skipped
        if not interactive and (done % every == 0 or done == len(todo)):
            log.info("extract: %d/%d videos (done here / unfinished at the start, which other "
                     "processes may share), %.1f frames/s", done, len(todo), fps)

    try:
        with claims:
            queue = list(todo)
            for attempt in range(2):  # then once more over what others held: a holder may have died
                if attempt:
                    queue, elsewhere[:] = list(elsewhere), []
                if n_workers <= 1:
                    _run_here(queue, settings, claim_next, finish)
                else:
                    _run_in_pool(queue, settings, n_workers, claim_next, finish)
            for video, _, name in elsewhere:
                holder = claims.holder(name.stem) or {}
                record(VideoOutcome(str(video), "elsewhere", message=f"{video}: claimed by "
                                    f"{holder.get('owner', '?')} on {holder.get('host', '?')}"))
    finally:
        bar.close()
    if claims.taken_over:
        log.info("%s: took over %d claim(s) of stopped processes", task, len(claims.taken_over))
    records = assemble_manifest(out, out / MARKER_DIR / PARTS_DIR) if any(out.rglob("*.npz")) else []
    summary = ExtractSummary(sorted(outcomes, key=lambda o: o.video), problems, records, shard,
                             time.perf_counter() - t0, settings.backend,
                             str(out / VISUALIZE_DIR) if settings.visualize
                             and any((out / VISUALIZE_DIR).rglob("*.mp4")) else "", task)
    _write_summary(out, summary, task_file)
    return summary


def _run_here(queue: list, settings: ExtractSettings, claim_next, finish) -> None:
    """Extract the videos this process claims from ``queue``, one after another, here."""
    backend = detector = None
    while (job := claim_next(queue)) is not None:
        if backend is None:  # built once, and only when there is a video to extract
            backend = make_backend(settings)  # an error frees the claim (Claims.__exit__)
            detector = make_detector(settings)
        finish(job, _safe_extract(job[0], job[1], backend, settings, detector))


def _run_in_pool(queue: list, settings: ExtractSettings, n_workers: int, claim_next,
                 finish) -> None:
    """Extract the videos this process claims from ``queue`` in ``n_workers`` processes; a
    video is claimed only when a worker is free for it, so that processes balance."""
    import torch  # its thread count was chosen by vid2reid.threads.set_threads

    job = claim_next(queue)
    if job is None:
        return
    threads = max(1, torch.get_num_threads() // n_workers)
    pool = ProcessPoolExecutor(n_workers, mp_context=mp.get_context("spawn"),
                               initializer=_init_worker, initargs=(settings, threads))
    running: dict = {}
    try:
        while job is not None or running:
            while job is not None and len(running) < n_workers:
                video, root, _ = job
                running[pool.submit(_worker_run, str(video), str(root) if root else None)] = job
                job = claim_next(queue) if len(running) < n_workers else None
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                this = running.pop(fut)
                try:
                    outcome = fut.result()
                except Vid2ReidError:
                    raise
                except Exception as exc:  # worker died or could not build the backend
                    if "BrokenProcessPool" in type(exc).__name__:
                        raise PoseError(f"a worker process failed to start or crashed "
                                        f"({exc}); try --workers 1 to see the error") from None
                    outcome = VideoOutcome(str(this[0]), "failed",
                                           message=f"{this[0]}: {type(exc).__name__}: {exc}")
                finish(this, outcome)
            if job is None:
                job = claim_next(queue)
    except BaseException:  # Ctrl-C or a fatal error: do not start the queued videos
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _write_summary(out: Path, summary: ExtractSummary, task_file: str) -> None:
    data = dict(shard=list(summary.shard), task=summary.task, seconds=round(summary.seconds, 3),
                problems=summary.problems,
                outcomes=[{k: v for k, v in asdict(o).items() if k != "records"}
                          for o in summary.outcomes])
    path = out / MARKER_DIR / f"summary-{task_file}.json"
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())
