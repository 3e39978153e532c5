"""Pose-stage speed: vid2reid's batched MMPose backend vs frame-by-frame MMPoseInferencer, plus MediaPipe.

All MMPose runs use the same configs (pose_configs/rtmpose-m.py + the lifter) and the same
frames of one video, in one process, one after the other. Weights are random unless
--checkpoint-2d/--checkpoint-3d are given (speed does not depend on the weight values).
Prints one JSON object (and writes it to --json).

    .venv/bin/python benchmarks/bench_extract.py                 # first shared CASIA-B clip
    .venv/bin/python benchmarks/bench_extract.py --video my.avi --lifter videopose3d --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CLIPS = (REPO.parent / "shared" / "data" / "casia-b-clips").resolve()


def _count_frames(video: Path) -> int:
    from vid2reid.pose.video import read_frames

    return len(read_frames(video))


def bench_inferencer(video: Path, cfg2d: Path, cfg3d: Path, ckpt2d, ckpt3d, device: str) -> dict:
    """MMPoseInferencer(pose2d, pose3d, det_model='whole_image') over the video, frame by frame."""
    from vid2reid.pose.compat import import_mmpose_apis

    apis = import_mmpose_apis()
    t0 = time.perf_counter()
    inf = apis.MMPoseInferencer(pose2d=str(cfg2d), pose2d_weights=ckpt2d, pose3d=str(cfg3d),
                                pose3d_weights=ckpt3d, device=device, det_model="whole_image")
    t_init = time.perf_counter() - t0
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in inf(str(video), return_vis=False, show=False):  # exhaust the generator
        n += 1
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return dict(name="MMPoseInferencer frame by frame (whole-image box, config defaults incl. flip test)",
                frames=n, **_rates(n, dt, cpu), init_s=round(t_init, 2))


def _rates(n: int, wall: float, cpu: float) -> dict:
    """Wall-clock and process-CPU rates; CPU time is the fairer number on a busy machine."""
    return dict(seconds=round(wall, 3), frames_per_s=round(n / wall, 2), ms_per_frame=round(wall / n * 1e3, 1),
                cpu_seconds=round(cpu, 3), cpu_ms_per_frame=round(cpu / n * 1e3, 1))


def bench_ours(video: Path, backend_name: str, boxes: str, label: str, **mm) -> dict:
    """vid2reid's backend on the same video (2D in batches, lifter windows in batches)."""
    from vid2reid.pose.boxes import make_box_finder
    from vid2reid.pose.names import background_clip_for, parse_video_name
    from vid2reid.pose.video import FrameReader

    t0 = time.perf_counter()
    if backend_name == "mmpose":
        from vid2reid.pose.mmpose_backend import MMPoseBackend, MMPoseSettings

        backend = MMPoseBackend(MMPoseSettings(**mm))
    else:
        from vid2reid.pose.mediapipe_backend import MediaPipeBackend

        backend = MediaPipeBackend()
    t_init = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    finder = None
    if backend_name == "mmpose":
        finder = make_box_finder(boxes, video, background_clip_for(video, parse_video_name(video)))
    poses = backend.estimate_video(FrameReader(video), finder, min_frames=1)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = poses.frames
    return dict(name=label, frames=n, frames_with_person=int(poses.valid.sum()), **_rates(n, dt, cpu),
                init_s=round(t_init, 2), settings={"boxes": boxes, **{k: str(v) for k, v in mm.items()}})


def detection_rates(folder: Path) -> dict:
    """MediaPipe on every clip in a folder: frames with a skeleton, overall and where the walker is
    fully in view (a background-subtraction box that does not touch the left/right border)."""
    from vid2reid.pose.boxes import make_box_finder
    from vid2reid.pose.mediapipe_backend import MediaPipeBackend
    from vid2reid.pose.names import background_clip_for, list_videos, parse_video_name
    from vid2reid.pose.video import FrameReader, read_frames

    backend = MediaPipeBackend()
    clips, tot = [], np.zeros(4, int)
    for video, root in list_videos([folder])[0]:
        frames = read_frames(video)
        finder = make_box_finder("bgsub", video, background_clip_for(video, parse_video_name(video, root)))
        w = frames[0].shape[1]
        in_view = np.array([b is not None and b[0] > 1 and b[2] < w - 1 for b in map(finder, frames)])
        poses = backend.estimate_video(FrameReader(video), None, min_frames=1)
        row = [poses.frames, int(poses.valid.sum()), int(in_view.sum()), int(poses.valid[in_view].sum())]
        tot += row
        clips.append(dict(video=video.name, frames=row[0], with_skeleton=row[1], walker_in_view=row[2],
                          in_view_with_skeleton=row[3]))
    return dict(folder=str(folder), clips=clips, frames=int(tot[0]), with_skeleton=int(tot[1]),
                rate_all_frames=round(tot[1] / max(tot[0], 1), 4),
                walker_in_view=int(tot[2]), rate_in_view=round(tot[3] / max(tot[2], 1), 4))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", type=Path, default=CLIPS / "001-nm-01-090.avi")
    ap.add_argument("--lifter", default="videopose3d")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--checkpoint-2d", default=None)
    ap.add_argument("--checkpoint-3d", default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="torch threads for every MMPose run (1 gives stable numbers on a busy machine)")
    ap.add_argument("--skip-inferencer", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--detection", type=Path, default=None, metavar="FOLDER",
                    help="instead: MediaPipe detection rates on every clip in FOLDER")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import torch

    from vid2reid.pose.weights import resolve_config

    torch.set_num_threads(args.threads)

    if args.detection is not None:
        result = dict(benchmark="extract-detection", **detection_rates(args.detection))
        text = json.dumps(result, indent=1)
        print(text)
        if args.json:
            args.json.write_text(text)
        return result
    if not args.video.is_file():
        sys.exit(f"{args.video}: video not found (pass --video)")
    cfg2d, cfg3d = resolve_config("rtmpose-m"), resolve_config(args.lifter)
    random = args.checkpoint_2d is None or args.checkpoint_3d is None
    common = dict(lifter=args.lifter, device=args.device, allow_random_weights=random,
                  checkpoint_2d=args.checkpoint_2d, checkpoint_3d=args.checkpoint_3d)
    load0 = os.getloadavg()
    runs = []
    if not args.skip_inferencer:
        runs.append(bench_inferencer(args.video, cfg2d, cfg3d, args.checkpoint_2d, args.checkpoint_3d,
                                     args.device))
    runs.append(bench_ours(args.video, "mmpose", "whole", "vid2reid mmpose, whole-frame box, flip test "
                           "(same computation as the inferencer)", flip_test=True, **common))
    runs.append(bench_ours(args.video, "mmpose", "whole", "vid2reid mmpose, whole-frame box, no flip test "
                           "(default)", flip_test=False, **common))
    runs.append(bench_ours(args.video, "mmpose", "bgsub", "vid2reid mmpose default pipeline "
                           "(background-subtraction boxes, frames without a person skipped)", **common))
    runs.append(bench_ours(args.video, "mmpose", "bgsub", "vid2reid mmpose default pipeline, bf16 "
                           "backbone", precision="bf16", **common))
    try:
        runs.append(bench_ours(args.video, "mediapipe", "whole", "vid2reid mediapipe (BlazePose full)"))
    except Exception as exc:  # optional extra
        runs.append(dict(name="vid2reid mediapipe", error=str(exc)))
    base = runs[0]["frames_per_s"] if not args.skip_inferencer else None
    for r in runs:
        if base and "frames_per_s" in r:
            r["speedup_vs_inferencer"] = round(r["frames_per_s"] / base, 2)
            r["cpu_speedup_vs_inferencer"] = round(runs[0]["cpu_ms_per_frame"] / r["cpu_ms_per_frame"], 2)
    result = dict(benchmark="extract", video=str(args.video), frames=_count_frames(args.video),
                  lifter=args.lifter, device=args.device, weights="random" if random else "given",
                  torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(),
                  loadavg_before=[round(x, 2) for x in load0],
                  loadavg_after=[round(x, 2) for x in os.getloadavg()], runs=runs)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return result


if __name__ == "__main__":
    main()
