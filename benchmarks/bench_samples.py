"""How well does MediaPipe BlazePose see the rendered sample walkers? Prints JSON.

For every ``SSS-CC-NN-VVV.avi`` with a ``.gt.npz`` sidecar: run BlazePose
(mediapipe 0.10.21, model_complexity=1, video mode) and report

- detection rate: frames with a skeleton / frames (all frames, and frames in
  which the ground-truth walker is fully inside the image);
- 3D error: MPJPE in mm of the world landmarks against the ground-truth joints
  after a per-frame similarity (Procrustes) alignment, on the 12 joints both
  layouts share (hips, knees, ankles, shoulders, elbows, wrists), plus the
  same with left and right swapped per frame (to tell side confusions apart);
- 2D error: mean pixel distance of the image landmarks to the projected
  ground truth on the same joints.

Usage: .venv/bin/python benchmarks/bench_samples.py sample_videos [--limit N] [--views 090,054]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np

# h36m-17 index -> BlazePose-33 index for joints both layouts have.
H36M_TO_BLAZE = {1: 24, 2: 26, 3: 28, 4: 23, 5: 25, 6: 27, 11: 11, 12: 13, 13: 15, 14: 12, 15: 14,
                 16: 16}
H36M_IDX = list(H36M_TO_BLAZE)
BLAZE_IDX = [H36M_TO_BLAZE[i] for i in H36M_IDX]
# Left/right mirror of the 12 shared joints (positions in H36M_IDX order).
_MIRROR = [3, 4, 5, 0, 1, 2, 9, 10, 11, 6, 7, 8]
_NAME = re.compile(r"^(\d{3})-(nm|bg|cl)-(\d{2})-(\d{3})\.avi$")


def similarity_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Scale, rotate and translate ``pred`` (N, 3) onto ``gt`` (N, 3) (Umeyama)."""
    mp, mg = pred.mean(0), gt.mean(0)
    p, g = pred - mp, gt - mg
    u, s, vt = np.linalg.svd(p.T @ g)
    d = np.sign(np.linalg.det(u @ vt))
    corr = np.diag([1.0, 1.0, d])
    rot = u @ corr @ vt
    scale = (s * np.diag(corr)).sum() / (p ** 2).sum()
    return scale * p @ rot + mg


def run_clip(pose, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World landmarks (T, 33, 3), image landmarks in pixels (T, 33, 2), detected (T,)."""
    cap = cv2.VideoCapture(str(path))
    world, image, found = [], [], []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        res = pose.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        if res.pose_world_landmarks is None:
            world.append(np.full((33, 3), np.nan))
            image.append(np.full((33, 2), np.nan))
            found.append(False)
            continue
        world.append(np.array([[p.x, p.y, p.z] for p in res.pose_world_landmarks.landmark]))
        image.append(np.array([[p.x * w, p.y * h] for p in res.pose_landmarks.landmark]))
        found.append(True)
    cap.release()
    return np.array(world), np.array(image), np.array(found, dtype=bool)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("samples", type=Path)
    ap.add_argument("--limit", type=int, default=0, help="at most this many clips (0 = all)")
    ap.add_argument("--views", default="", help="comma-separated views to use (default all)")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)

    import mediapipe as mp

    views = {v for v in args.views.split(",") if v}
    clips = [p for p in sorted(args.samples.glob("*.avi")) if _NAME.match(p.name)
             and (p.with_suffix(".gt.npz")).exists()
             and (not views or _NAME.match(p.name).group(4) in views)]
    if args.limit:
        # A fixed random subset spread over subjects, conditions and views.
        pick = np.random.default_rng(0).permutation(len(clips))[: args.limit]
        clips = [clips[i] for i in sorted(pick)]
    if not clips:
        print(f"error: {args.samples}: no clips with ground-truth sidecars", file=sys.stderr)
        return 1

    per_view: dict[str, dict[str, list]] = {}
    per_cond: dict[str, dict[str, list]] = {}
    t0 = time.perf_counter()
    n_frames = 0
    for path in clips:
        m = _NAME.match(path.name)
        cond, view = m.group(2), m.group(4)
        gt = np.load(path.with_suffix(".gt.npz"))
        with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1,
                                    enable_segmentation=False) as pose:
            world, image, found = run_clip(pose, path)
        T = min(len(found), gt["joints"].shape[0])
        n_frames += T
        vis = gt["visible"][:T]
        g3 = gt["joints"][:T][:, H36M_IDX].astype(np.float64)
        cam = gt["joints"][:T][:, H36M_IDX].astype(np.float64)
        g2 = (cam[..., :2] / cam[..., 2:]) @ gt["K"][:2, :2].T + gt["K"][:2, 2]
        err3, err3_swap, err2 = [], [], []
        for t in np.flatnonzero(found[:T]):
            pred = world[t, BLAZE_IDX]
            e = np.linalg.norm(similarity_align(pred, g3[t]) - g3[t], axis=1).mean()
            e_sw = np.linalg.norm(similarity_align(pred[_MIRROR], g3[t]) - g3[t], axis=1).mean()
            err3.append(e)
            err3_swap.append(min(e, e_sw))
            err2.append(np.linalg.norm(image[t, BLAZE_IDX] - g2[t], axis=1).mean())
        for table, key in ((per_view, view), (per_cond, cond)):
            d = table.setdefault(key, {"frames": [], "found": [], "visible": [], "e3": [],
                                       "e3s": [], "e2": []})
            d["frames"].append(T)
            d["found"].append(int(found[:T].sum()))
            d["visible"].append((int(vis.sum()), int((found[:T] & vis).sum())))
            d["e3"] += err3
            d["e3s"] += err3_swap
            d["e2"] += err2
    elapsed = time.perf_counter() - t0

    def summary(d: dict[str, list]) -> dict[str, float]:
        vis_frames = sum(v for v, _ in d["visible"])
        vis_found = sum(f for _, f in d["visible"])
        return {
            "clips": len(d["frames"]), "frames": int(sum(d["frames"])),
            "detection_rate": round(sum(d["found"]) / max(1, sum(d["frames"])), 4),
            "visible_frames": vis_frames,
            "detection_rate_visible": round(vis_found / max(1, vis_frames), 4),
            "mpjpe_pa_mm": round(1000 * float(np.mean(d["e3"])), 1) if d["e3"] else None,
            "mpjpe_pa_lr_tolerant_mm": round(1000 * float(np.mean(d["e3s"])), 1) if d["e3s"] else None,
            "error_2d_px": round(float(np.mean(d["e2"])), 2) if d["e2"] else None,
        }

    total: dict[str, list] = {}
    for d in per_view.values():
        for k, v in d.items():
            total.setdefault(k, []).extend(v)
    out = {
        "benchmark": "bench_samples",
        "estimator": f"mediapipe {mp.__version__} BlazePose model_complexity=1 video mode",
        "joints": "12 shared: hips, knees, ankles, shoulders, elbows, wrists",
        "alignment": "per-frame similarity (Procrustes, scale+rotation+translation)",
        "samples": str(args.samples),
        "overall": summary(total),
        "per_view": {k: summary(v) for k, v in sorted(per_view.items())},
        "per_condition": {k: summary(v) for k, v in sorted(per_cond.items())},
        "seconds": round(elapsed, 1),
        "ms_per_frame": round(1000 * elapsed / max(1, n_frames), 1),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
