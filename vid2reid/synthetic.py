"""Synthetic walkers as skeleton sequences, for tests, demos and benchmarks.

Each identity has its own body (height, limb proportions, shoulder and hip
width) and gait (cadence, stride, knee lift, arm swing, lean); every walk varies
those a little, adds per-walk estimation bias and per-frame noise. ``bg`` walks
carry a bag (one arm swings less and hangs lower, the body leans), ``cl`` walks
wear a coat (shoulders and hips are estimated wider and lower). Joints follow
the ``h36m-17`` layout in metres, so the output looks like lifted poses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vid2reid.store import Record, save_sequence, write_manifest

LAYOUT = "h36m-17"
DEFAULT_WALKS = {"nm": 4, "bg": 2, "cl": 2}


@dataclass(frozen=True)
class Body:
    """An identity's body and gait parameters (lengths in metres, angles in radians)."""

    thigh: float
    shin: float
    torso: float
    neck: float
    head: float
    upper_arm: float
    forearm: float
    hip_width: float
    shoulder_width: float
    cadence: float  # strides per second
    hip_swing: float
    knee_lift: float
    arm_swing: float
    elbow_bend: float
    lean: float
    sway: float


def random_body(rng: np.random.Generator) -> Body:
    """Draw one identity: a height, then proportions that vary between people."""
    h = rng.normal(1.70, 0.08)
    p = lambda mean, sd: h * mean * (1 + rng.normal(0, sd))  # noqa: E731 (fraction of height)
    return Body(thigh=p(0.245, 0.05), shin=p(0.246, 0.05), torso=p(0.29, 0.05),
                neck=p(0.05, 0.1), head=p(0.11, 0.06), upper_arm=p(0.17, 0.06),
                forearm=p(0.15, 0.06), hip_width=p(0.11, 0.08), shoulder_width=p(0.2, 0.07),
                cadence=rng.normal(0.95, 0.08), hip_swing=rng.normal(0.42, 0.06),
                knee_lift=rng.normal(1.0, 0.15), arm_swing=rng.normal(0.35, 0.1),
                elbow_bend=rng.normal(0.3, 0.1), lean=rng.normal(0.06, 0.04),
                sway=abs(rng.normal(0.02, 0.008)))


_GAIT = ("cadence", "hip_swing", "knee_lift", "arm_swing", "elbow_bend", "lean", "sway")


def _vary(body: Body, rng: np.random.Generator, sd: float) -> Body:
    """The same person on another walk: gait varies, bone lengths do not."""
    return Body(**{k: v * (1 + rng.normal(0, sd)) if k in _GAIT else v
                   for k, v in body.__dict__.items()})


def walk(body: Body, frames: int, rng: np.random.Generator, condition: str = "nm",
         view_deg: float = 90.0, fps: float = 25.0, noise: float = 0.015) -> np.ndarray:
    """One walk of ``frames`` frames as (T, 17, 3) joints (x forward, y up, z to the left)."""
    b = _vary(body, rng, 0.05)
    t = np.arange(frames) / fps
    ph = 2 * np.pi * b.cadence * t + rng.uniform(0, 2 * np.pi)
    arm_l, arm_r, lean, drop_r = b.arm_swing, b.arm_swing, b.lean, 0.0
    widen = 1.0
    if condition == "bg":  # a bag in the right hand: that arm hangs still and lower
        arm_r, lean, drop_r = 0.25 * b.arm_swing, lean + 0.05, 0.04
    elif condition == "cl":  # a coat: shoulders and hips look wider to an estimator
        widen = 1.12
    up = np.array([0.0, 1.0, 0.0])
    side = np.array([0.0, 0.0, 1.0])
    T = frames
    J = np.zeros((T, 17, 3))
    pelvis = np.stack([np.zeros(T), 0.02 * np.cos(2 * ph), b.sway * np.sin(ph)], axis=1)
    J[:, 0] = pelvis

    def leg(phase: np.ndarray, sgn: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hip = pelvis + sgn * side * b.hip_width * widen / 2
        a = b.hip_swing * np.sin(phase)
        k = b.knee_lift * (0.1 + 0.55 * np.clip(np.sin(phase + 1.2), 0, None))
        knee = hip + b.thigh * np.stack([np.sin(a), -np.cos(a), np.zeros(T)], 1)
        ankle = knee + b.shin * np.stack([np.sin(a - k), -np.cos(a - k), np.zeros(T)], 1)
        return hip, knee, ankle

    J[:, 1], J[:, 2], J[:, 3] = leg(ph + np.pi, -1.0)  # right
    J[:, 4], J[:, 5], J[:, 6] = leg(ph, 1.0)  # left
    trunk = np.array([np.sin(lean), np.cos(lean), 0.0])
    J[:, 7] = pelvis + trunk * b.torso * 0.5
    J[:, 8] = pelvis + trunk * b.torso
    J[:, 9] = J[:, 8] + trunk * b.neck
    J[:, 10] = J[:, 9] + trunk * b.head

    def arm(phase: np.ndarray, sgn: float, swing: float, drop: float):
        sh = J[:, 8] + sgn * side * b.shoulder_width * widen / 2 - up * (0.02 * (widen - 1) * 10 + drop)
        a = -swing * np.sin(phase)
        el = sh + b.upper_arm * np.stack([np.sin(a), -np.cos(a), np.zeros(T)], 1)
        e = a + b.elbow_bend
        wr = el + b.forearm * np.stack([np.sin(e), -np.cos(e), np.zeros(T)], 1)
        return sh, el, wr

    J[:, 11], J[:, 12], J[:, 13] = arm(ph, 1.0, arm_l, 0.0)
    J[:, 14], J[:, 15], J[:, 16] = arm(ph + np.pi, -1.0, arm_r, drop_r)
    # Estimation errors: a per-walk bias per joint plus per-frame jitter.
    J += rng.normal(0, noise, (1, 17, 3)) + rng.normal(0, noise, (T, 17, 3))
    yaw = np.deg2rad(view_deg - 90.0)
    rot = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    return (J @ rot.T).astype(np.float32)


def make_synthetic_store(out_dir: Path | str, n_subjects: int = 20,
                         walks: dict[str, int] | None = None, views: tuple[str, ...] = ("090",),
                         frames: tuple[int, int] = (80, 120), noise: float = 0.015,
                         seed: int = 0, train_walks: dict[str, int] | None = None) -> Path:
    """Write a skeleton store of synthetic walkers with a train/test ``split`` column.

    Two protocols, as in the papers:

    - ``train_walks=None`` (CASIA-B style, new people at test time): subjects
      ``001..`` are split in halves, the first half's ``walks`` train, the
      second half's test.
    - ``train_walks`` given (Kinect data-set style, KS20/KGBD/IAS/BIWI: the
      same people, other walks): every subject has ``walks`` for testing
      (sequence numbers from 01, so CASIA-B's probe/gallery split applies) and
      ``train_walks`` more for training, numbered after them.
    """
    out = Path(out_dir)
    walks = walks or DEFAULT_WALKS
    rng = np.random.default_rng(seed)
    bodies = [random_body(rng) for _ in range(n_subjects)]
    records: list[Record] = []
    for s, body in enumerate(bodies):
        subject = f"{s + 1:03d}"
        if train_walks is None:
            plan = [("train" if s < (n_subjects + 1) // 2 else "test", walks, {})]
        else:
            plan = [("test", walks, {}), ("train", train_walks, walks)]
        for split, counts, after in plan:
            for cond, n in counts.items():
                for k in range(after.get(cond, 0) + 1, after.get(cond, 0) + n + 1):
                    for view in views:
                        t = int(rng.integers(frames[0], frames[1] + 1))
                        j = walk(body, t, rng, cond, float(view), noise=noise)
                        name = f"{subject}-{cond}-{k:02d}-{view}"
                        records.append(save_sequence(out, f"{subject}/{name}.npz", j, LAYOUT,
                                                     subject=subject, condition=cond,
                                                     sequence=f"{k:02d}", view=view, split=split))
    write_manifest(out, records)
    return out
