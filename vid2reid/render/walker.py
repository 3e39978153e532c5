"""A parametric 3D walker: ground-truth Human3.6M-17 joints (metres) for self-made gait clips.

Identities differ as people do (height, limb proportions, stride, cadence, arm
swing, posture, lateral sway); each walk varies a little around its identity;
a bag changes the arm motion (and posture for a backpack), a coat slightly
damps the arm swing. The kinematics are a sagittal-plane sinusoidal gait model
(hip and shoulder flexion, two-bump knee flexion, pelvis yaw and sway) whose
pelvis height keeps the lower foot on the floor and whose forward speed keeps
the stance foot from sliding.

World frame: x = walking direction, y = up, z = the walker's right; metres,
floor at y = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAYOUT = "h36m-17"
NUM_JOINTS = 17
# Human3.6M-17 order.
PELVIS, R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE, SPINE, THORAX, NECK, HEAD = range(11)
L_SHOULDER, L_ELBOW, L_WRIST, R_SHOULDER, R_ELBOW, R_WRIST = range(11, 17)
BONES = ((PELVIS, R_HIP), (R_HIP, R_KNEE), (R_KNEE, R_ANKLE), (PELVIS, L_HIP), (L_HIP, L_KNEE),
         (L_KNEE, L_ANKLE), (PELVIS, SPINE), (SPINE, THORAX), (THORAX, NECK), (NECK, HEAD),
         (THORAX, L_SHOULDER), (L_SHOULDER, L_ELBOW), (L_ELBOW, L_WRIST),
         (THORAX, R_SHOULDER), (R_SHOULDER, R_ELBOW), (R_ELBOW, R_WRIST))
BAG_KINDS = ("hand", "shoulder", "backpack")

Color = tuple[int, int, int]  # BGR

_SKIN = ((190, 215, 245), (160, 190, 230), (120, 160, 215), (90, 130, 185), (60, 95, 140),
         (140, 180, 225))
_HAIR = ((20, 20, 25), (30, 45, 70), (40, 70, 120), (60, 110, 170), (150, 150, 150),
         (25, 30, 45))
_CLOTH = ((40, 40, 170), (150, 70, 30), (50, 120, 40), (40, 150, 210), (120, 40, 110),
          (200, 200, 205), (60, 60, 60), (30, 90, 160), (160, 140, 60), (90, 50, 30),
          (130, 160, 200), (50, 50, 120))
_TROUSERS = ((80, 50, 30), (40, 40, 40), (120, 110, 100), (60, 80, 110), (30, 30, 60),
             (140, 100, 70))
_SHOES = ((25, 25, 25), (40, 60, 90), (220, 220, 220), (30, 30, 80))
_COAT = ((35, 45, 60), (90, 80, 70), (50, 70, 40), (40, 40, 110), (120, 120, 120), (70, 40, 20))
_BAG = ((20, 40, 80), (30, 30, 30), (60, 90, 140), (100, 50, 40))


@dataclass(frozen=True)
class Appearance:
    """How an identity looks (colours BGR); it does not change the joints."""

    skin: Color
    hair: Color
    shirt: Color
    trousers: Color
    shoes: Color
    coat: Color
    bag: Color
    long_sleeves: bool
    long_hair: bool
    girth: float  # torso/limb thickness factor


@dataclass(frozen=True)
class Identity:
    """Body and gait parameters of one person."""

    height: float  # metres
    leg: float  # limb-length factors around the anthropometric mean
    torso: float
    arm: float
    shoulder_width: float  # metres, between shoulder joints
    hip_width: float  # metres, between hip joints
    stride: float  # hip-swing scale
    cadence: float  # steps per minute
    arm_swing: float  # shoulder flexion amplitude, degrees
    elbow_flex: float  # degrees
    lean: float  # trunk forward lean, degrees
    head_forward: float  # metres the head sits ahead of the thorax
    knee_swing: float  # peak swing-phase knee flexion, degrees
    sway: float  # lateral pelvis sway amplitude, metres
    bag_kind: str
    look: Appearance


@dataclass(frozen=True)
class Walk:
    """One recorded walk: an identity, a condition and this walk's small variations."""

    identity: Identity
    condition: str  # "nm", "bg" or "cl"
    cadence_scale: float
    stride_scale: float
    arm_scale: float
    lean_offset: float
    sway_scale: float
    phase0: float


def _pick(rng: np.random.Generator, seq: tuple) -> object:
    return seq[int(rng.integers(len(seq)))]


def make_identity(rng: np.random.Generator) -> Identity:
    """Draw one person: proportions, gait style and clothing."""
    height = float(rng.uniform(1.55, 1.92))
    look = Appearance(
        skin=_pick(rng, _SKIN), hair=_pick(rng, _HAIR), shirt=_pick(rng, _CLOTH),
        trousers=_pick(rng, _TROUSERS), shoes=_pick(rng, _SHOES), coat=_pick(rng, _COAT),
        bag=_pick(rng, _BAG), long_sleeves=bool(rng.random() < 0.5),
        long_hair=bool(rng.random() < 0.35), girth=float(rng.uniform(0.9, 1.2)))
    # Taller people take slower, longer steps; the rest is individual style.
    cadence = float(np.clip(112 - 40 * (height - 1.73) + rng.normal(0, 6), 92, 128))
    return Identity(
        height=height, leg=float(rng.normal(1, 0.04)), torso=float(rng.normal(1, 0.04)),
        arm=float(rng.normal(1, 0.04)),
        shoulder_width=float(0.205 * height * rng.normal(1, 0.06)),
        hip_width=float(0.1 * height * rng.normal(1, 0.07)),
        stride=float(np.clip(rng.normal(1, 0.1), 0.75, 1.3)), cadence=cadence,
        arm_swing=float(rng.uniform(10, 34)), elbow_flex=float(rng.uniform(8, 32)),
        lean=float(rng.uniform(-2, 9)), head_forward=float(rng.uniform(0.0, 0.06)),
        knee_swing=float(rng.uniform(48, 66)), sway=float(rng.uniform(0.01, 0.035)),
        bag_kind=str(_pick(rng, BAG_KINDS)), look=look)


def make_walk(identity: Identity, condition: str, rng: np.random.Generator) -> Walk:
    """One walk of ``identity``: the same person, slightly different each time."""
    return Walk(identity=identity, condition=condition,
                cadence_scale=float(rng.normal(1, 0.025)), stride_scale=float(rng.normal(1, 0.03)),
                arm_scale=float(rng.normal(1, 0.08)), lean_offset=float(rng.normal(0, 1.0)),
                sway_scale=float(rng.normal(1, 0.1)), phase0=float(rng.uniform(0, 1)))


@dataclass(frozen=True)
class Segments:
    """Segment lengths in metres."""

    ankle_h: float
    shank: float
    thigh: float
    torso: float
    neck: float
    head: float
    upper_arm: float
    forearm: float


def segments(identity: Identity) -> Segments:
    """Anthropometric segment lengths (fractions of height after Drillis & Contini)."""
    h = identity.height
    return Segments(ankle_h=0.045 * h, shank=0.246 * h * identity.leg,
                    thigh=0.245 * h * identity.leg, torso=0.28 * h * identity.torso,
                    neck=0.09 * h, head=0.09 * h, upper_arm=0.186 * h * identity.arm,
                    forearm=0.146 * h * identity.arm)


def _bump(p: np.ndarray, centre: float, width: float) -> np.ndarray:
    d = (p - centre + 0.5) % 1.0 - 0.5
    return np.exp(-0.5 * (d / width) ** 2)


def _leg_angles(p: np.ndarray, amp: float, knee_swing: float) -> tuple[np.ndarray, np.ndarray]:
    """Hip flexion and knee flexion (radians) at gait-cycle phase ``p`` (0 = heel strike)."""
    hip = np.radians(5.0 + amp * np.cos(2 * np.pi * p))
    knee = np.radians(5.0 + 15.0 * _bump(p, 0.15, 0.07) + knee_swing * _bump(p, 0.72, 0.11))
    return hip, knee


def _leg_offsets(p: np.ndarray, amp: float, knee_swing: float, seg: Segments) -> np.ndarray:
    """Ankle position relative to its hip in the sagittal plane (x forward, y up)."""
    hip, knee = _leg_angles(p, amp, knee_swing)
    shank_angle = hip - knee
    x = seg.thigh * np.sin(hip) + seg.shank * np.sin(shank_angle)
    y = -seg.thigh * np.cos(hip) - seg.shank * np.cos(shank_angle)
    return np.stack([x, y], axis=-1)


@dataclass(frozen=True)
class WalkFrames:
    """A rendered walk's geometry: joints plus what the drawing needs."""

    joints: np.ndarray  # (T, 17, 3) float64 world metres
    foot_pitch: np.ndarray  # (T, 2) radians, [right, left]; positive = toes up
    speed: float  # metres per second
    cadence: float  # steps per minute


def _rot_y(angle: np.ndarray) -> np.ndarray:
    """Rotation matrices about the vertical axis, +angle moves +z (right) towards +x."""
    c, s = np.cos(angle), np.sin(angle)
    z, o = np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1),
                     np.stack([-s, z, c], -1)], -2)


def walk_frames(walk: Walk, n_frames: int, fps: float = 25.0, start_x: float = 0.0) -> WalkFrames:
    """Joints of ``walk`` for ``n_frames`` frames; the pelvis starts near ``start_x``."""
    ident = walk.identity
    seg = segments(ident)
    cond = walk.condition
    cadence = ident.cadence * walk.cadence_scale * (0.97 if cond == "bg" else 1.0)
    stride_hz = cadence / 120.0  # one gait cycle = two steps
    amp = 20.0 * ident.stride * walk.stride_scale * (0.96 if cond == "cl" else 1.0)
    t = np.arange(n_frames) / fps
    p_r = (walk.phase0 + stride_hz * t) % 1.0
    p_l = (p_r + 0.5) % 1.0

    ank_r = _leg_offsets(p_r, amp, ident.knee_swing, seg)
    ank_l = _leg_offsets(p_l, amp, ident.knee_swing, seg)
    # Speed from the stance foot's motion relative to the hip (no foot sliding in mid-stance).
    stance = _leg_offsets(np.array([0.08, 0.42]), amp, ident.knee_swing, seg)
    speed = float((stance[0, 0] - stance[1, 0]) / (0.34 / stride_hz))

    # Pelvis height: the lower ankle sits at ankle height above the floor.
    pelvis_y = seg.ankle_h - np.minimum(ank_r[:, 1], ank_l[:, 1])
    yaw = np.radians(4.0 * ident.stride) * np.cos(2 * np.pi * p_r)
    sway = ident.sway * walk.sway_scale * np.sin(2 * np.pi * p_r)
    x0 = start_x + speed * t
    pelvis = np.stack([x0, pelvis_y, sway], axis=-1)

    J = np.zeros((n_frames, NUM_JOINTS, 3))
    J[:, PELVIS] = pelvis
    R_pel = _rot_y(yaw)
    half_hip = np.array([0.0, 0.0, ident.hip_width / 2])
    for side, hip_j, knee_j, ank_j, p, ank in ((1, R_HIP, R_KNEE, R_ANKLE, p_r, ank_r),
                                                (-1, L_HIP, L_KNEE, L_ANKLE, p_l, ank_l)):
        hip_pos = pelvis + side * (R_pel @ half_hip)
        hip_a, knee_a = _leg_angles(p, amp, ident.knee_swing)
        knee_pos = hip_pos + seg.thigh * np.stack(
            [np.sin(hip_a), -np.cos(hip_a), np.zeros_like(hip_a)], -1)
        ank_pos = hip_pos + np.stack([ank[:, 0], ank[:, 1], np.zeros_like(hip_a)], -1)
        J[:, hip_j], J[:, knee_j], J[:, ank_j] = hip_pos, knee_pos, ank_pos

    lean_deg = ident.lean + walk.lean_offset + (5.0 if cond == "bg" and ident.bag_kind == "backpack"
                                                else 0.0)
    lean = np.radians(lean_deg + 1.5 * np.cos(4 * np.pi * p_r))  # small bob twice per cycle
    trunk = np.stack([np.sin(lean), np.cos(lean), np.zeros_like(lean)], -1)
    J[:, SPINE] = pelvis + 0.5 * seg.torso * trunk
    J[:, THORAX] = pelvis + seg.torso * trunk
    fwd = np.array([1.0, 0.0, 0.0])
    J[:, NECK] = J[:, THORAX] + seg.neck * trunk + ident.head_forward * fwd
    J[:, HEAD] = J[:, NECK] + seg.head * np.array([0.0, 1.0, 0.0]) + 0.3 * ident.head_forward * fwd
    R_sh = _rot_y(-0.6 * yaw)
    half_sh = np.array([0.0, -0.02, ident.shoulder_width / 2])
    half_sh_l = np.array([0.0, -0.02, -ident.shoulder_width / 2])
    J[:, R_SHOULDER] = J[:, THORAX] + R_sh @ half_sh
    J[:, L_SHOULDER] = J[:, THORAX] + R_sh @ half_sh_l

    swing = ident.arm_swing * walk.arm_scale * (0.85 if cond == "cl" else 1.0)
    abduct = 7.0 + (5.0 if cond == "cl" else 0.0)
    for side, sh_j, el_j, wr_j, p in ((1, R_SHOULDER, R_ELBOW, R_WRIST, p_r),
                                      (-1, L_SHOULDER, L_ELBOW, L_WRIST, p_l)):
        # The arm swings forward with the opposite leg.
        a_sw, a_off, e_base, abd = swing, 2.0, ident.elbow_flex, abduct
        if cond == "bg":
            kind = ident.bag_kind
            if kind == "hand" and side == 1:  # bag carried in the right hand
                a_sw, a_off, e_base, abd = 0.25 * swing, 0.0, 5.0, abduct + 8.0
            elif kind == "shoulder" and side == -1:  # left hand holds the strap
                a_sw, a_off, e_base, abd = 0.1 * swing, 8.0, 80.0, abduct - 3.0
            elif kind == "backpack":
                a_sw = 0.7 * swing
        alpha = np.radians(a_off - a_sw * np.cos(2 * np.pi * p))
        beta = np.radians(e_base) + 0.6 * np.maximum(alpha, 0.0)
        sa = np.sin(np.radians(abd))
        upper = np.stack([np.sin(alpha), -np.cos(alpha), np.full_like(alpha, side * sa)], -1)
        upper /= np.linalg.norm(upper, axis=-1, keepdims=True)
        fore = np.stack([np.sin(alpha + beta), -np.cos(alpha + beta),
                         np.full_like(alpha, side * 0.5 * sa)], -1)
        fore /= np.linalg.norm(fore, axis=-1, keepdims=True)
        J[:, el_j] = J[:, sh_j] + seg.upper_arm * upper
        J[:, wr_j] = J[:, el_j] + seg.forearm * fore

    # Foot pitch for drawing: toes up at heel strike, flat in stance, down at push-off.
    def pitch(p: np.ndarray) -> np.ndarray:
        return np.radians(12 * _bump(p, 0.0, 0.05) - 35 * _bump(p, 0.58, 0.06)
                          - 10 * _bump(p, 0.75, 0.08))

    foot_pitch = np.stack([pitch(p_r), pitch(p_l)], -1)
    return WalkFrames(joints=J, foot_pitch=foot_pitch, speed=speed, cadence=cadence)
